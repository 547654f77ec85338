// Verify an Interlock grant with jose (not Interlock's code) from the server's JWKS alone.
// Usage: node verify.mjs JWKS_URL TOKEN [AUDIENCE]
// Prints the verified payload as JSON and exits 0; prints the reason to stderr and exits 1 otherwise.
import { createRemoteJWKSet, jwtVerify } from "jose";

const [jwksUrl, token, audience] = process.argv.slice(2);
if (!jwksUrl || !token) {
  console.error("usage: node verify.mjs JWKS_URL TOKEN [AUDIENCE]");
  process.exit(2);
}
try {
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  // RFC 8725 §3.1: the algorithm is pinned, never taken from the token's header.
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    algorithms: ["EdDSA"],
    typ: "grant+jwt",
    ...(audience ? { audience } : {}),
  });
  process.stdout.write(JSON.stringify({ header: protectedHeader, payload }) + "\n");
} catch (error) {
  console.error(`${error.code ?? "ERR"}: ${error.message}`);
  process.exit(1);
}
