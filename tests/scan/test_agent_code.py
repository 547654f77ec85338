"""Agent code: tools that reach side effects unguarded are found; reads, guarded tools and dead code are not."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from interlock.scan.agent_code import MAX_DEPTH, AgentCodeScanner
from interlock.scan.engine import default_scanners, scan
from interlock.scan.findings import ScanResult

LANGCHAIN = "from langchain_core.tools import tool\n"


def agent_module(body: str) -> str:
    """A LangChain module: the import, then `body` (dedented)."""
    return LANGCHAIN + textwrap.dedent(body)


def scan_code(tmp_path: Path, code: str, name: str = "agent.py") -> ScanResult:
    path = tmp_path / name
    path.write_text(code)
    return scan([path], [AgentCodeScanner()])


def found(tmp_path: Path, code: str) -> list[tuple[str, int | None, str | None, str | None]]:
    """(rule, tool line, tool name, first side-effect call) of each finding."""
    result = scan_code(tmp_path, code)
    assert result.problems == [], result.problems
    assert result.scanned == {"agent-code": 1}
    return [(f.rule.id, f.location.line, f.identity, f.action) for f in result.findings]


def test_a_tool_reaching_a_payment_through_helpers_is_reported_with_the_path(tmp_path: Path) -> None:
    result = scan_code(tmp_path, agent_module("""\
        import stripe

        def _charge(amount):
            return stripe.PaymentIntent.create(amount=amount, currency="eur")

        def settle(amount):
            return _charge(amount)

        @tool
        def pay_invoice(amount: int) -> str:
            \"\"\"Pay an invoice.\"\"\"
            return settle(amount)
        """))
    [finding] = result.findings
    assert (finding.rule.id, finding.severity) == ("agent_code.unguarded_side_effect", "high")
    assert finding.location.line == 11
    assert (finding.identity, finding.action) == ("pay_invoice", "stripe.PaymentIntent.create")
    assert finding.message == (
        "tool `pay_invoice` (line 11) reaches payment `stripe.PaymentIntent.create` at line 5 via `settle()` →"
        " `_charge()`, with no Interlock guard on the path")


@pytest.mark.parametrize(("body", "call"), [
    ("requests.post(url, json={})", "requests.post"),
    ("requests.delete(url)", "requests.delete"),
    ("requests.request('PATCH', url)", "requests.request('PATCH')"),
    ("requests.request(method, url)", "requests.request(method chosen at run time)"),
    ("requests.Session().put(url)", "requests.Session.put"),
    ("httpx.post(url)", "httpx.post"),
    ("subprocess.run(['ls'], check=True)", "subprocess.run"),
    ("os.system('reboot')", "os.system"),
    ("stripe.Refund.create(payment_intent=url)", "stripe.Refund.create"),
    ("boto3.client('iam').create_user(UserName=url)", "boto3.client.create_user"),
    ("conn.cursor().execute('INSERT INTO t VALUES (?)', (1,))", "conn.cursor.execute"),
    ("conn.execute(f'delete from t where id={url}')", "conn.execute"),
    ("session.commit()", "session.commit"),
    ("Order.objects.create(url=url)", "Order.objects.create"),
    ("smtplib.SMTP('mail').sendmail('a', ['b'], url)", "smtplib.SMTP.sendmail"),
])
def test_each_kind_of_side_effect_is_recognised(tmp_path: Path, body: str, call: str) -> None:
    code = agent_module(f"""\
        import os, smtplib, subprocess
        import boto3, httpx, requests, stripe

        @tool
        def act(url: str, method: str, conn, session, Order) -> None:
            \"\"\"Do something.\"\"\"
            {body}
        """)
    assert found(tmp_path, code) == [("agent_code.unguarded_side_effect", 6, "act", call)]


@pytest.mark.parametrize("body", [
    "return requests.get(url).text",
    "return httpx.Client().get(url).text",
    "return requests.request('GET', url).text",
    "return open(url).read()",
    "return open(url, 'rb').read()",
    "return conn.execute('SELECT * FROM t WHERE id = ?', (url,)).fetchall()",
    "return boto3.client('s3').get_object(Bucket='b', Key=url)",
    "return client.post(url)",  # an object of unknown origin: not claimed
    "return stripe.PaymentIntent.retrieve(url)",
    "return consumer.consume(1)",
])
def test_a_tool_that_only_reads_is_not_reported(tmp_path: Path, body: str) -> None:
    code = agent_module(f"""\
        import boto3, httpx, requests, stripe

        @tool
        def look(url: str, conn, client, consumer) -> str:
            \"\"\"Look something up.\"\"\"
            {body}
        """)
    assert found(tmp_path, code) == []


def test_file_writes_are_their_own_rule(tmp_path: Path) -> None:
    result = scan_code(tmp_path, agent_module("""\
        import shutil
        from pathlib import Path

        @tool
        def save_note(path: str, text: str) -> None:
            \"\"\"Save a note.\"\"\"
            Path(path).write_text(text)
            with open(path + ".log", "a") as log:
                log.write(text)
            shutil.rmtree("/tmp/cache")
            with open(path) as readback:
                readback.read()
        """))
    [finding] = result.findings
    assert (finding.rule.id, finding.severity, finding.action) == (
        "agent_code.unguarded_file_write", "medium", "pathlib.Path.write_text")
    assert finding.message == (
        "tool `save_note` (line 6) reaches file write `pathlib.Path.write_text` at line 8; also file write `open` at"
        " line 9, file write `shutil.rmtree` at line 11, with no Interlock guard on the path")


def test_guarded_tools_are_not_reported(tmp_path: Path) -> None:
    code = agent_module("""\
        import interlock
        import requests
        from interlock import guard
        from interlock.enforce.guard import guard as interlock_guard
        from interlock.enforce.tools import gated_tool
        from langchain_core.tools import Tool

        GATE = None

        @tool
        @guard("payments.transfer", executor="payments-service", gate=GATE, resource="account:treasury")
        def pay(amount: int) -> None:
            \"\"\"Pay.\"\"\"
            requests.post("https://bank/transfer", json={"amount": amount})

        @tool
        @interlock_guard("payments.refund", executor="payments-service", gate=GATE, resource="account:treasury")
        def refund(amount: int) -> None:
            \"\"\"Refund.\"\"\"
            requests.post("https://bank/refund", json={"amount": amount})

        @tool
        @interlock.guard("hr.fire", executor="hr", gate=GATE, resource="staff")
        def fire(person: str) -> None:
            \"\"\"Fire.\"\"\"
            requests.delete(f"https://hr/staff/{person}")

        @gated_tool(action="infra.reboot", gate=GATE)
        def reboot(host: str) -> None:
            \"\"\"Reboot.\"\"\"
            requests.post(f"https://{host}/reboot")

        def wipe(host: str) -> None:
            requests.post(f"https://{host}/wipe")

        def erase(host: str) -> None:
            requests.post(f"https://{host}/erase")

        wipe_tool = Tool(name="wipe", func=gated_tool(wipe, action="infra.wipe", gate=GATE), description="Wipe.")
        erase_tool = Tool(name="erase", func=guard("infra.erase", executor="x", gate=GATE, resource="r")(erase),
                          description="Erase.")
        """)
    assert found(tmp_path, code) == []


def test_a_decorator_named_guard_from_elsewhere_is_no_guard(tmp_path: Path) -> None:
    code = agent_module("""\
        import requests
        from mylib.auth import guard

        @tool
        @guard("payments.transfer")
        def pay(amount: int) -> None:
            \"\"\"Pay.\"\"\"
            requests.post("https://bank/transfer", json={"amount": amount})
        """)
    assert found(tmp_path, code) == [("agent_code.unguarded_side_effect", 7, "pay", "requests.post")]


CONSUME = 'gate.consume(grant, "payments-service", {"action": "payments.transfer", "resource": "r", "params": {}})'


@pytest.mark.parametrize(("body", "reported"), [
    (f"{CONSUME}\n    requests.post(URL)", False),
    (f"requests.post(URL)\n    {CONSUME}", True),
    (f"if amount > 100:\n        {CONSUME}\n    requests.post(URL)", True),
    (f"try:\n        {CONSUME}\n    except GrantError:\n        pass\n    requests.post(URL)", True),
    (f"try:\n        {CONSUME}\n    except GrantError:\n        return 'refused'\n    requests.post(URL)", False),
    (f"try:\n        {CONSUME}\n    except GrantError:\n        requests.post(ALERT)\n        raise", True),
    (f"try:\n        {CONSUME}\n    finally:\n        requests.post(ALERT)", True),
    (f"with suppress(GrantError):\n        {CONSUME}\n    requests.post(URL)", True),
    (f"requests.post(URL, data={CONSUME})", False),  # the argument is evaluated, and consumed, before the post
    ("gate.consume(grant, 'payments-service', requests.post(URL).json())", True),
    ("authorize(gate, grant)\n    requests.post(URL)", False),
    ("if amount:\n        authorize(gate, grant)\n    requests.post(URL)", True),
    ("queue.consume(grant)\n    requests.post(URL)", True),
])
def test_a_grant_consumed_first_on_every_path_guards_the_side_effect(tmp_path: Path, body: str,
                                                                     reported: bool) -> None:
    code = LANGCHAIN + f"""\
from contextlib import suppress
import requests
from interlock import GrantError

URL = ALERT = "https://bank"

def authorize(gate, grant):
    {CONSUME}

@tool
def pay(grant: str, amount: int, gate, queue) -> str:
    \"\"\"Pay.\"\"\"
    {body}
"""
    assert bool(found(tmp_path, code)) is reported


def test_side_effects_outside_any_tool_path_are_not_reported(tmp_path: Path) -> None:
    code = agent_module("""\
        import subprocess

        def cleanup():
            subprocess.run(["rm", "-rf", "/tmp/x"])

        def main():
            cleanup()

        @tool
        def add(a: int, b: int) -> int:
            \"\"\"Add two numbers.\"\"\"
            def never_called():
                subprocess.run(["reboot"])
            return a + b

        if __name__ == "__main__":
            main()
        """)
    assert found(tmp_path, code) == []


def test_mcp_openai_agents_and_crewai_tools_are_recognised(tmp_path: Path) -> None:
    (tmp_path / "mcp_server.py").write_text(textwrap.dedent("""\
        import subprocess
        from mcp.server.fastmcp import FastMCP

        server = FastMCP("ops")

        @server.tool(name="run_command")
        def run(command: str) -> str:
            return subprocess.check_output(command, shell=True).decode()

        @server.tool()
        def status() -> str:
            return "ok"

        def restart(service: str) -> None:
            subprocess.run(["systemctl", "restart", service])

        server.add_tool(restart)
        """))
    (tmp_path / "openai_agent.py").write_text(textwrap.dedent("""\
        import httpx
        from agents import Agent, function_tool
        from interlock import gated_tool

        @function_tool(name_override="open_ticket")
        async def ticket(title: str) -> str:
            async with httpx.AsyncClient() as client:
                response = await client.post("https://tracker/api/issues", json={"title": title})
            return response.text

        def refund(charge: str) -> str:
            return httpx.post(f"https://payments/charges/{charge}/refund").text

        def close(charge: str) -> str:
            return httpx.post(f"https://payments/charges/{charge}/close").text

        agent = Agent(name="support", tools=[ticket, function_tool(refund, name_override="refund_charge"),
                                             function_tool(gated_tool(close, gate=GATE, executor="payments"))])
        """))
    (tmp_path / "crew_tool.py").write_text(textwrap.dedent("""\
        import requests
        from crewai.tools import BaseTool

        class PublishTool(BaseTool):
            name: str = "publish_post"
            description: str = "Publish a blog post."

            def __init__(self):
                super().__init__()
                self.http = requests.Session()

            def _run(self, body: str) -> str:
                return self._send(body)

            def _send(self, body):
                return self.http.post("https://blog/api/posts", data=body).text
        """))
    (tmp_path / "chain.py").write_text(textwrap.dedent("""\
        import boto3
        from langchain.tools import StructuredTool, Tool, tool

        s3 = boto3.client("s3")

        def upload(key: str, body: str) -> None:
            s3.put_object(Bucket="reports", Key=key, Body=body)

        def remove(key: str) -> None:
            s3.delete_object(Bucket="reports", Key=key)

        def tag(key: str) -> None:
            s3.put_object_tagging(Bucket="reports", Key=key, Tagging={"TagSet": []})

        upload_tool = StructuredTool.from_function(upload, name="upload_report")
        tools = [tool(tag)]
        remove_tool = Tool(name="remove_report", func=remove, description="Remove a report.")
        """))
    result = scan([tmp_path], [AgentCodeScanner()])
    assert result.problems == [] and result.scanned == {"agent-code": 4}
    assert [(f.location.path, f.location.line, f.identity, f.action) for f in result.findings] == [
        ("chain.py", 6, "upload_report", "boto3.client.put_object"),
        ("chain.py", 9, "remove_report", "boto3.client.delete_object"),
        ("chain.py", 12, "tag", "boto3.client.put_object_tagging"),
        ("crew_tool.py", 12, "publish_post", "requests.Session.post"),
        ("mcp_server.py", 7, "run_command", "subprocess.check_output"),
        ("mcp_server.py", 14, "restart", "subprocess.run"),
        ("openai_agent.py", 6, "open_ticket", "httpx.AsyncClient.post"),
        ("openai_agent.py", 11, "refund_charge", "httpx.post"),
    ]


def test_recursive_helpers_end_and_the_depth_is_bounded(tmp_path: Path) -> None:
    chain = "\n".join(f"def step{n}():\n    return step{n + 1}()\n" for n in range(MAX_DEPTH + 2))
    code = LANGCHAIN + f"""\
import requests

def ping(n):
    return pong(n - 1) if n else requests.post("https://x")

def pong(n):
    return ping(n)

{chain}
def step{MAX_DEPTH + 2}():
    requests.post("https://deep")

@tool
def bounce(n: int) -> None:
    \"\"\"Bounce.\"\"\"
    ping(n)

@tool
def near() -> None:
    \"\"\"Near.\"\"\"
    step{MAX_DEPTH + 2 - (MAX_DEPTH - 1)}()

@tool
def beyond() -> None:
    \"\"\"Beyond.\"\"\"
    step{MAX_DEPTH + 2 - MAX_DEPTH}()

@tool
def far() -> None:
    \"\"\"Far.\"\"\"
    step0()
"""
    names = [identity for _, _, identity, _ in found(tmp_path, code)]
    # `near` reaches the post MAX_DEPTH calls away; `beyond` MAX_DEPTH + 1 and `far` MAX_DEPTH + 3: not followed.
    assert names == ["bounce", "near"]


def test_functions_that_all_call_each_other_are_summarised_not_enumerated(tmp_path: Path) -> None:
    # 30 functions each calling all 30: 30^8 paths within the depth bound. Walking paths would never end;
    # each function is walked once, and the side effect after the tangle is still found.
    tangle = "".join(f"def f{i}():\n" + "".join(f"    f{j}()\n" for j in range(30)) + "\n" for i in range(30))
    code = LANGCHAIN + "import requests\n\n" + tangle + """\
def last():
    requests.post("https://x")

@tool
def tangled() -> None:
    \"\"\"Tangled.\"\"\"
    f0()
    last()
"""
    [(_, _, name, call)] = found(tmp_path, code)
    assert (name, call) == ("tangled", "requests.post")


def test_a_file_that_does_not_parse_is_a_problem_of_that_file(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(LANGCHAIN + "@tool\ndef broken(:\n    pass\n")
    (tmp_path / "fine.py").write_text(LANGCHAIN + "import os\n\n@tool\ndef halt() -> None:\n    os.system('halt')\n")
    result = scan([tmp_path], [AgentCodeScanner()])
    assert [(p.path, p.code, p.message) for p in result.problems] == [
        ("broken.py", "scan.unparseable", "line 3: invalid syntax")]
    assert [f.identity for f in result.findings] == ["halt"]


def test_python_without_an_agent_framework_is_not_agent_code(tmp_path: Path) -> None:
    plain = tmp_path / "script.py"
    plain.write_text("import subprocess\n\ndef tool(f):\n    return f\n\n"
                     "@tool\ndef run():\n    subprocess.run(['x'])\n")
    mentioned = tmp_path / "notes.py"
    mentioned.write_text('"""We might use langchain one day."""\nimport os\n')
    walked = scan([tmp_path], [AgentCodeScanner()])
    assert walked.findings == [] and walked.scanned == {} and walked.skipped == 2
    assert [p.code for p in scan([plain], [AgentCodeScanner()]).problems] == ["scan.unknown_format"]


def test_scanned_code_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = agent_module(f"""\
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("imported")

        @tool
        def touch() -> None:
            \"\"\"Touch.\"\"\"
            pathlib.Path({str(marker)!r}).write_text("called")
        """)
    result = scan_code(tmp_path, code)
    assert [f.rule.id for f in result.findings] == ["agent_code.unguarded_file_write"]
    assert not marker.exists()


def test_the_default_scanners_include_agent_code(tmp_path: Path) -> None:
    path = tmp_path / "agent.py"
    path.write_text(LANGCHAIN + "import os\n\n@tool\ndef halt() -> None:\n    os.system('halt')\n")
    result = scan([path], default_scanners())
    assert result.scanned == {"agent-code": 1}
    assert [f.rule.id for f in result.findings] == ["agent_code.unguarded_side_effect"]


def test_the_readme_example_finds_what_the_readme_says(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("### Agent code"):]
    start = section.index("```python\n") + len("```python\n")
    result = scan_code(tmp_path, section[start:section.index("```\n", start)], name="tools.py")
    [finding] = result.findings
    assert f"agent_code.unguarded_side_effect  tools.py:{finding.location.line}" in section
    assert finding.message.replace(",", "") in section.replace("\n      ", " ").replace(",", "")
