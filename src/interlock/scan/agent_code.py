"""Python agent code: tools an agent can call whose bodies reach a side effect with no Interlock guard first.

Read with `ast` only; nothing in a scanned file is imported or run. A file is agent code when it imports an
agent framework (LangChain, LangGraph, MCP, FastMCP, OpenAI Agents, CrewAI). Its tools are the functions
exposed by `@tool`, `@function_tool`, `@<server>.tool()` (or those called on a function), `Tool(func=...)`,
`StructuredTool.from_function(...)`, `<server>.add_tool(...)` and the `_run`/`_arun` methods of `BaseTool`
subclasses. From each tool the scanner follows calls into functions and methods of the same module (up to
`MAX_DEPTH` calls deep) and reports the side effects of `agent_effects` that no guard precedes. A guard is
`@guard(...)` from interlock, `gated_tool` (as a decorator or a call wrapping the function), or a call
`<gate>.consume(grant, executor, action)` that runs on every path before the side effect (not inside an `if`,
a loop, an `except` that swallows the refusal, or a `finally`).

The parsed module, its tools and how it names calls are `agent_module`'s; this file owns the rules, the
findings and the walk from each tool to the side effects it reaches.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

from interlock.scan import frameworks as fw
from interlock.scan.agent_effects import Effect, classify
from interlock.scan.agent_module import Function, Module, Tool, last_name, targets
from interlock.scan.findings import Finding, Location, Rule
from interlock.scan.sources import ParseError, Source

KIND = "agent-code"
MAX_DEPTH = 8  # calls followed from a tool into the same module
FRAMEWORKS = ("langchain", "langchain_core", "langchain_community", "langgraph", "mcp", "fastmcp", "agents",
              "crewai", "crewai_tools")
_IMPORTS_FRAMEWORK = re.compile(
    r"^[ \t]*(?:from[ \t]+|import[ \t]+(?:[\w.]+[ \t]*(?:as[ \t]+\w+[ \t]*)?,[ \t]*)*)(?:" + "|".join(FRAMEWORKS)
    + r")(?:\.[\w.]+)?\b", re.MULTILINE)
MAX_LISTED = 3  # side effects named in one finding's message

UNGUARDED_SIDE_EFFECT = Rule(
    id="agent_code.unguarded_side_effect",
    title="An agent tool reaches a side effect with no Interlock guard",
    severity="high",
    why="Whatever the model decides to call runs: a prompt injection, a poisoned document or a convincing"
        " message becomes an HTTP write, a payment, a command or a database change, because the tool trusts"
        " the agent that called it and nothing independent checks the action first.",
    fix="Decorate the tool's function with `@guard(action, executor=..., gate=..., resource=...)` from interlock"
        " (under the framework's tool decorator) or wrap it with `gated_tool(...)`, so it runs only after a grant"
        " for exactly these arguments is consumed.",
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED,),
    nist_csf=(fw.CSF_PR_AA_05, fw.CSF_PR_AA_03),
    nist_800_207=(fw.ZT_TENET_4, fw.ZT_TENET_6),
)
UNGUARDED_FILE_WRITE = Rule(
    id="agent_code.unguarded_file_write",
    title="An agent tool writes or deletes files with no Interlock guard",
    severity="medium",
    why="The agent decides which files are written, moved or deleted; a steered agent can overwrite"
        " configuration, plant code or destroy data, and nothing independent checks it first.",
    fix="Guard the tool with `@guard(...)` or `gated_tool(...)` from interlock, or confine it to a directory"
        " whose contents cannot change what runs.",
    owasp_nhi=(fw.NHI5_OVERPRIVILEGED,),
    nist_csf=(fw.CSF_PR_AA_05,),
    nist_800_207=(fw.ZT_TENET_6,),
)
RULES = (UNGUARDED_SIDE_EFFECT, UNGUARDED_FILE_WRITE)

Position = tuple[int, int]


class AgentCodeScanner:
    """Finds agent tools whose side effects no Interlock guard precedes."""

    kind = KIND

    def recognizes(self, source: Source) -> bool:
        return source.syntax == "python" and _IMPORTS_FRAMEWORK.search(source.text) is not None

    def scan(self, source: Source) -> list[Finding]:
        try:
            tree = ast.parse(source.text, filename=source.display)
        except SyntaxError as exc:
            raise ParseError(f"line {exc.lineno}: {exc.msg}") from None
        except ValueError as exc:
            raise ParseError(str(exc)) from None
        module = Module.of(tree)
        tools = list(module.tools())
        reached = _reach(module, [(tool.function, tool.owner) for tool in tools])
        return [finding for tool in tools for finding in _findings(source.display, tool, reached[id(tool.function)])]


def _findings(path: str, tool: Tool, effects: tuple[Effect, ...]) -> Iterator[Finding]:
    for rule, chosen in ((UNGUARDED_SIDE_EFFECT, [e for e in effects if e.category != "file write"]),
                         (UNGUARDED_FILE_WRITE, [e for e in effects if e.category == "file write"])):
        if not chosen:
            continue
        first, rest = chosen[0], chosen[1:]
        named = [_describe(effect) for effect in rest[: MAX_LISTED - 1]]
        more = f" (+{len(rest) - len(named)} more)" if len(rest) > len(named) else ""
        also = f"; also {', '.join(named)}{more}" if named else ""
        yield Finding(rule, Location(path, tool.function.lineno),
                      f"tool `{tool.name}` (line {tool.function.lineno}) reaches {_describe(first)}{also},"
                      " with no Interlock guard on the path", identity=tool.name, action=first.call)


def _describe(effect: Effect) -> str:
    via = f" via {' → '.join(f'`{name}()`' for name in effect.via)}" if effect.via else ""
    return f"{effect.category} `{effect.call}` at line {effect.line}{via}"


# --- what a function reaches ------------------------------------------------------------------------------


def _reach(module: Module, roots: list[tuple[Function, str | None]]) -> dict[int, tuple[Effect, ...]]:
    """The side effects each function reaches with no guard before them, following calls into the module.

    Each function is walked once, into its sites (calls, side effects, grant consumptions). Whether a function
    always consumes a grant is a least fixpoint over those sites; the side effects are then gathered in
    `MAX_DEPTH` rounds, round k adding what is k calls away, so the bound and the path named (the shortest)
    do not depend on the order of functions, and recursion costs nothing extra. Keyed by `id(function)`.
    """
    sites: dict[int, list[_Site]] = {}
    names: dict[int, str] = {}
    pending = list(roots)
    while pending:
        function, owner = pending.pop()
        if id(function) in sites:
            continue
        names[id(function)] = function.name
        if any(module.is_guard(decorator) for decorator in function.decorator_list):
            sites[id(function)] = []  # it consumes a grant for its own arguments before its body runs
            continue
        walk = _Walk(module, function, owner)
        walk.visit_body(function.body, conditional=False, regions=())
        sites[id(function)] = sorted(walk.sites, key=lambda site: site.end)
        pending.extend(walk.callees)
    consumes = dict.fromkeys(sites, False)
    changed = True
    while changed:
        changed = False
        for key, found in sites.items():
            if not consumes[key] and any(site.guards(consumes) for site in found):
                consumes[key] = changed = True
    guards = {key: [site for site in found if site.guards(consumes)] for key, found in sites.items()}
    effects: dict[int, tuple[Effect, ...]] = dict.fromkeys(sites, ())
    for _ in range(MAX_DEPTH + 1):
        effects = {key: _unguarded(found, guards[key], effects, names) for key, found in sites.items()}
    return effects


@dataclass(frozen=True)
class _Site:
    """A call in a function body that matters: a side effect, a grant consumption, or a call into the module."""

    end: Position  # where the call finishes: it acts (or has consumed its grant) from then on
    regions: tuple[tuple[Position, int], ...]  # the except/finally blocks it is in: (their try's start, block id)
    conditional: bool  # it may not run on every path through the function
    effect: Effect | None = None
    consume: bool = False
    callee: int | None = None  # id of the function of this module it calls

    def guards(self, consumes: dict[int, bool]) -> bool:
        """Whether this site always consumes a grant when the function runs (itself, or through a callee)."""
        if self.conditional:
            return False
        return self.consume or (self.callee is not None and consumes.get(self.callee, False))


def _unguarded(sites: list[_Site], guards: list[_Site], reached: dict[int, tuple[Effect, ...]],
               names: dict[int, str]) -> tuple[Effect, ...]:
    """The side effects of a function's own sites, and those its callees reached, that no guard precedes."""
    effects: list[Effect] = []
    seen: set[tuple[str, int]] = set()
    for site in sites:
        if any(_guards(guard, site) for guard in guards):
            continue
        if site.effect is not None:
            found: tuple[Effect, ...] = (site.effect,)
        elif site.callee is not None:
            name = names[site.callee]
            found = tuple(Effect(e.category, e.call, e.line, (name, *e.via)) for e in reached[site.callee])
        else:
            found = ()
        for effect in found:
            if (effect.call, effect.line) not in seen:
                seen.add((effect.call, effect.line))
                effects.append(effect)
    return tuple(effects)


class _Walk:
    """One function body in execution order: side effects, grant consumptions, and calls into the module."""

    def __init__(self, module: Module, function: Function, owner: str | None) -> None:
        self.module, self.function, self.owner = module, function, owner
        self.local = _local_types(module, function, owner)
        self.sites: list[_Site] = []
        self.callees: list[tuple[Function, str | None]] = []

    def visit_body(self, body: list[ast.stmt], conditional: bool, regions: tuple[tuple[Position, int], ...]) -> None:
        for statement in body:
            self.visit(statement, conditional, regions)

    def visit(self, node: ast.AST, conditional: bool, regions: tuple[tuple[Position, int], ...]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            return  # defined here, run only if called: not followed
        if isinstance(node, ast.If | ast.While | ast.IfExp):
            self.visit(node.test, conditional, regions)
            for part in (node.body, node.orelse):
                self._visit_any(part, True, regions)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.visit(node.iter, conditional, regions)
            self.visit_body(node.body + node.orelse, True, regions)
        elif isinstance(node, ast.Try | ast.TryStar):
            self._visit_try(node, conditional, regions)
        elif isinstance(node, ast.With | ast.AsyncWith):
            suppressing = False
            for item in node.items:
                self.visit(item.context_expr, conditional, regions)
                suppressing |= last_name(item.context_expr) == "suppress"
            self.visit_body(node.body, conditional or suppressing, regions)
        elif isinstance(node, ast.Match):
            self.visit(node.subject, conditional, regions)
            for case in node.cases:
                self.visit_body(case.body, True, regions)
        elif isinstance(node, ast.BoolOp):
            self.visit(node.values[0], conditional, regions)
            for value in node.values[1:]:
                self.visit(value, True, regions)
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            for child in ast.iter_child_nodes(node):
                self.visit(child, True, regions)
        elif isinstance(node, ast.Call):
            for child in ast.iter_child_nodes(node):
                self.visit(child, conditional, regions)
            self._call(node, conditional, regions)
        else:
            for child in ast.iter_child_nodes(node):
                self.visit(child, conditional, regions)

    def _visit_any(self, part: ast.AST | list[ast.stmt], conditional: bool,
                   regions: tuple[tuple[Position, int], ...]) -> None:
        if isinstance(part, list):
            self.visit_body(part, conditional, regions)
        else:
            self.visit(part, conditional, regions)

    def _visit_try(self, node: ast.Try | ast.TryStar, conditional: bool,
                   regions: tuple[tuple[Position, int], ...]) -> None:
        # A refusal raised in the body skips it only if every handler leaves the function too.
        swallows = any(not _exits(handler.body) for handler in node.handlers)
        self.visit_body(node.body, conditional or swallows, regions)
        start = (node.lineno, node.col_offset)
        for handler in node.handlers:
            self.visit_body(handler.body, True, (*regions, (start, id(handler))))
        self.visit_body(node.orelse, conditional or swallows, regions)
        self.visit_body(node.finalbody, conditional, (*regions, (start, id(node.finalbody))))

    def _call(self, call: ast.Call, conditional: bool, regions: tuple[tuple[Position, int], ...]) -> None:
        end = (call.end_lineno or call.lineno, call.end_col_offset or call.col_offset)
        if _consumes_grant(call):
            self.sites.append(_Site(end, regions, conditional, consume=True))
            return
        effect = classify(call, self.module.dotted(call.func, self.local, self.owner), self.module.constants)
        if effect is not None:
            self.sites.append(_Site(end, regions, conditional, effect=effect))
            return
        target = self.module.callee(call, self.owner)
        if target is not None:
            self.sites.append(_Site(end, regions, conditional, callee=id(target[0])))
            self.callees.append(target)


def _guards(guard: _Site, site: _Site) -> bool:
    """Whether an unconditional grant consumption runs before `site` on every path that reaches it."""
    if guard.end >= site.end:
        return False
    # A site in an except or finally block runs when the try body failed: only a consumption before that try,
    # or inside the same block, precedes it.
    guard_blocks = {block for _, block in guard.regions}
    return all(block in guard_blocks or guard.end < start for start, block in site.regions)


def _consumes_grant(call: ast.Call) -> bool:
    """`<gate>.consume(grant, executor, action)`: the shape of Gate.consume, not of a queue consumer."""
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "consume"):
        return False
    return len(call.args) + len(call.keywords) >= 3 or any(k.arg == "grant" for k in call.keywords)


def _exits(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Raise | ast.Return)


def _local_types(module: Module, function: Function, owner: str | None) -> dict[str, str]:
    """What each local name was made by: `x = httpx.Client()`, `with boto3.client(...) as x`, `x: httpx.Client`."""
    local: dict[str, str] = {}
    arguments = function.args
    for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs):
        if argument.annotation is not None:
            named = module.dotted(argument.annotation, {}, owner)
            if named:
                local[argument.arg] = named
    for node in _own_nodes(function):
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Call):
            made = module.dotted(node.value.func, local, owner)
            for target in targets(node):
                if made:
                    local[target] = made
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                if isinstance(item.optional_vars, ast.Name) and isinstance(item.context_expr, ast.Call):
                    made = module.dotted(item.context_expr.func, local, owner)
                    if made:
                        local[item.optional_vars.id] = made
    return local


def _own_nodes(function: Function) -> Iterator[ast.AST]:
    """The nodes of a function's body in source order, without those of functions or classes defined inside."""
    pending: list[ast.AST] = list(reversed(function.body))
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            pending.extend(reversed(list(ast.iter_child_nodes(node))))
