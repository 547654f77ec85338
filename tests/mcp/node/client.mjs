// Drives `interlock mcp-gateway` with the official MCP TypeScript SDK client, as an agent host would.
// Usage: node client.mjs '<JSON array: the gateway command and its arguments>'
// Prints one JSON object: the listed tools, an allowed call's result and a denied call's result.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [command, ...args] = JSON.parse(process.argv[2]);
const transport = new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
const client = new Client({ name: "interlock-node-test", version: "1.0.0" });
await client.connect(transport);
try {
  const listed = await client.listTools();
  const allowed = await client.callTool({ name: "lookup", arguments: { q: "from-node" } });
  const denied = await client.callTool({ name: "pay", arguments: { amount: 5, recipient: "blocked:node" } });
  const pending = await client.callTool({ name: "pay", arguments: { amount: 700, recipient: "node" } });
  process.stdout.write(JSON.stringify({ server: client.getServerVersion(), tools: listed.tools, allowed, denied, pending }) + "\n");
} finally {
  await client.close();
}
