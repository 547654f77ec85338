"""One Python module of agent code, parsed with `ast` only: the model `agent_code` walks.

`Module` holds what the scanner knows of a file: its imports, its top-level functions, its classes and their
methods, the module-level names assigned from a call or a string constant, and the `self.<name>` attributes
each class assigns from a call. From these it names a call (`dotted`: the attribute chain with calls elided,
its root resolved through imports or assignments), finds the functions the file exposes to an agent as tools
(`Tool`) unless a guard wraps them, and finds the function of the same file a call runs (`callee`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

TOOL_DECORATOR_ROOTS = frozenset({"langchain", "langchain_core", "langchain_community", "crewai", "crewai_tools"})
MCP_ROOTS = frozenset({"mcp", "fastmcp"})

Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Tool:
    """A function an agent can call: its name as the agent sees it, where it is defined, its class if a method."""

    name: str
    function: Function
    owner: str | None = None


@dataclass
class Module:
    imports: dict[str, str]
    functions: dict[str, Function]
    classes: dict[str, ast.ClassDef]
    methods: dict[str, dict[str, Function]]
    variables: dict[str, str]  # module-level name -> dotted name of the call it was assigned from
    attributes: dict[str, dict[str, str]]  # class -> `self.<name>` -> dotted name of the call assigned to it
    constants: dict[str, str]  # module-level string constants (SQL kept in a name)
    tree: ast.Module
    wrapped: set[str] = field(default_factory=set)  # functions passed to gated_tool(...) or guard(...)(...)

    @classmethod
    def of(cls, tree: ast.Module) -> Module:
        imports: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        imports[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        imports[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        for name in functions:
            imports.pop(name, None)  # a function defined here shadows an import of the same name
        classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        methods = {name: {n.name: n for n in c.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
                   for name, c in classes.items()}
        module = cls(imports, functions, classes, methods, {}, {}, {}, tree)
        for statement in tree.body:
            if isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value is not None:
                for target in targets(statement):
                    value = statement.value
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        module.constants[target] = value.value
                    elif isinstance(value, ast.Call):
                        made = module.dotted(value.func, {}, None)
                        if made:
                            module.variables[target] = made
        for name, node in classes.items():
            module.attributes[name] = module._self_attributes(node)
        module.wrapped = module._wrapped()
        return module

    # --- naming calls ---

    def dotted(self, node: ast.expr, local: dict[str, str], owner: str | None) -> str | None:
        """`a.b.c` for an attribute chain, calls elided, its root resolved through imports or assignments."""
        parts: list[str] = []
        while True:
            if isinstance(node, ast.Attribute):
                parts.append(node.attr)
                node = node.value
            elif isinstance(node, ast.Call):
                node = node.func
            elif isinstance(node, ast.Name):
                break
            else:
                return None
        parts.reverse()
        name = node.id
        if name == "self" and owner is not None and parts and parts[0] in self.attributes.get(owner, {}):
            root = self.attributes[owner][parts.pop(0)]
        elif name in local:
            root = local[name]
        elif name in self.imports:
            root = self.imports[name]
        elif name in self.variables:
            root = self.variables[name]
        else:
            root = name
        return ".".join([root, *parts])

    def _self_attributes(self, node: ast.ClassDef) -> dict[str, str]:
        found: dict[str, str] = {}
        for inner in ast.walk(node):
            if isinstance(inner, ast.Assign) and isinstance(inner.value, ast.Call):
                for target in inner.targets:
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                            and target.value.id == "self":
                        made = self.dotted(inner.value.func, {}, None)
                        if made:
                            found[target.attr] = made
        return found

    # --- tools and guards ---

    def tools(self) -> Iterator[Tool]:
        """Every function the module exposes to an agent as a tool, unless wrapped by a guard."""
        seen: set[int] = set()
        for tool in self._tools():
            if id(tool.function) in seen or (tool.function.name in self.wrapped and tool.owner is None):
                continue
            seen.add(id(tool.function))
            if not any(self.is_guard(decorator) for decorator in tool.function.decorator_list):
                yield tool

    def _tools(self) -> Iterator[Tool]:
        owners = {id(f): name for name, table in self.methods.items() for f in table.values()}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for decorator in node.decorator_list:
                    named = self._tool_decorator(decorator)
                    if named is not None:
                        yield Tool(named or node.name, node, owners.get(id(node)))
            elif isinstance(node, ast.Call):
                yield from self._registered(node)
            elif isinstance(node, ast.ClassDef) and node.name in self.methods and any(
                    self._framework_name(base, TOOL_DECORATOR_ROOTS, "BaseTool") for base in node.bases):
                label = _class_tool_name(node)
                for method in ("_run", "_arun"):
                    if method in self.methods[node.name]:
                        yield Tool(label, self.methods[node.name][method], node.name)

    def _tool_decorator(self, decorator: ast.expr) -> str | None:
        """The tool name a decorator gives ("" for the function's own name), or None if it makes no tool."""
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        call = decorator if isinstance(decorator, ast.Call) else None
        if self._framework_name(target, TOOL_DECORATOR_ROOTS, "tool"):
            return _given_name(call, positional=True)
        if self._framework_name(target, frozenset({"agents"}), "function_tool"):
            return _given_name(call, positional=False, keyword="name_override")
        if isinstance(target, ast.Attribute) and target.attr in ("tool", "call_tool") and self._uses_mcp(target):
            return _given_name(call, positional=True)
        return None

    def _registered(self, call: ast.Call) -> Iterator[Tool]:
        """Tools made by a call: `tool(f)`, `function_tool(f)`, `Tool(func=f)`, `StructuredTool.from_function(f)`,
        `server.add_tool(f)`."""
        func = call.func
        candidates: list[ast.expr | None] = []
        label = _given_name(call, positional=False)
        if self._framework_name(func, TOOL_DECORATOR_ROOTS, "tool"):  # `tool(f)`, the decorator called directly
            candidates = [call.args[0] if call.args else None]
        elif self._framework_name(func, frozenset({"agents"}), "function_tool"):
            candidates, label = [call.args[0] if call.args else None], _given_name(call, False, "name_override")
        elif self._framework_name(func, TOOL_DECORATOR_ROOTS, "Tool"):
            candidates = [_keyword(call, "func") or (call.args[1] if len(call.args) > 1 else None),
                          _keyword(call, "coroutine")]
        elif isinstance(func, ast.Attribute) and func.attr == "from_function" and (
                self._framework_name(func.value, TOOL_DECORATOR_ROOTS, "StructuredTool")
                or self._framework_name(func.value, TOOL_DECORATOR_ROOTS, "Tool")):
            candidates = [_keyword(call, "func") or (call.args[0] if call.args else None), _keyword(call, "coroutine")]
        elif isinstance(func, ast.Attribute) and func.attr == "add_tool" and self._uses_mcp(func):
            candidates = [_keyword(call, "fn") or (call.args[0] if call.args else None)]
        for candidate in candidates:
            if isinstance(candidate, ast.Name) and candidate.id in self.functions:
                yield Tool(label or candidate.id, self.functions[candidate.id])

    def _wrapped(self) -> set[str]:
        """Functions handed to `gated_tool(f, ...)` or `guard(...)(f)`: the agent gets the guarded version."""
        wrapped = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name) and (
                    last_name(node.func) == "gated_tool" or self.is_guard(node.func)):
                wrapped.add(node.args[0].id)
        return wrapped

    def is_guard(self, node: ast.expr) -> bool:
        target = node.func if isinstance(node, ast.Call) else node
        if last_name(target) == "gated_tool":
            return True
        named = self.dotted(target, {}, None) or ""
        return named.startswith("interlock.") and named.endswith(".guard") and isinstance(node, ast.Call)

    def _framework_name(self, node: ast.expr, roots: frozenset[str], last: str) -> bool:
        named = self.dotted(node, {}, None) if isinstance(node, ast.Name | ast.Attribute) else None
        return named is not None and named.split(".")[-1] == last and named.split(".")[0] in roots and "." in named

    def _uses_mcp(self, attribute: ast.Attribute) -> bool:
        owner = self.dotted(attribute.value, {}, None) or ""
        return owner.split(".")[0] in MCP_ROOTS or any(v.split(".")[0] in MCP_ROOTS for v in self.imports.values())

    # --- calls into this module ---

    def callee(self, call: ast.Call, owner: str | None) -> tuple[Function, str | None] | None:
        """The function of this module a call runs: `f(...)`, or `self.m(...)` / `cls.m(...)` in a class."""
        func = call.func
        if isinstance(func, ast.Name) and func.id in self.functions:
            return self.functions[func.id], None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and owner is not None:
            if func.value.id in ("self", "cls") and func.attr in self.methods.get(owner, {}):
                return self.methods[owner][func.attr], owner
        return None


def targets(statement: ast.Assign | ast.AnnAssign) -> list[str]:
    """The plain names an assignment binds."""
    bound = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
    return [t.id for t in bound if isinstance(t, ast.Name)]


def last_name(node: ast.expr) -> str | None:
    """The last name of what is called or named: `suppress` for `contextlib.suppress(...)`."""
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute):
        return target.attr
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _given_name(call: ast.Call | None, positional: bool, keyword: str = "name") -> str:
    """The tool name a decorator or constructor sets (`@tool("name")`, `name=...`), "" when it sets none."""
    if call is None:
        return ""
    given = _keyword(call, keyword)
    if given is None and positional and call.args:
        given = call.args[0]
    return given.value if isinstance(given, ast.Constant) and isinstance(given.value, str) else ""


def _class_tool_name(node: ast.ClassDef) -> str:
    for statement in node.body:
        if isinstance(statement, ast.Assign | ast.AnnAssign) and "name" in targets(statement) and isinstance(
                statement.value, ast.Constant) and isinstance(statement.value.value, str):
            return statement.value.value
    return node.name
