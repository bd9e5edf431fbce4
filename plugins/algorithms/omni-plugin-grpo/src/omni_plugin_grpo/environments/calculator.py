"""The `calculator` environment: a `calculate(expression)` tool the model may call for arithmetic.

Expressions are read with Python's `ast` and only numbers, + - * / // % ** and parentheses are evaluated: no names,
calls or attributes, so a call can never run code. A bad call (unknown tool, missing or invalid expression) is
answered with an error the model can read, not raised.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

from omni.api import Environment, EnvironmentStep, ParsedAnswer, ToolCall

TOOL_NAME = "calculate"
CALCULATOR_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "Evaluate an arithmetic expression",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
            },
        },
    }
]
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_MAX_EXPONENT = 64  # 10**10**10 would hang the rollout
_MAX_LENGTH = 200


class CalculatorError(ValueError):
    """An expression the calculator does not evaluate; its message is the tool's answer."""


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression of numbers, + - * / // % ** and parentheses."""
    if len(expression) > _MAX_LENGTH:
        raise CalculatorError(f"expression longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise CalculatorError(f"cannot read {expression!r} as arithmetic") from None
    return _value(tree.body)


def _value(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise CalculatorError(f"exponent {right} is above {_MAX_EXPONENT}")
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
    raise CalculatorError(f"only numbers, + - * / // % ** and parentheses are allowed, not {ast.unparse(node)!r}")


def format_number(value: int | float) -> str:
    """An integral value without a decimal point, others rounded to 6 significant digits."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value) if isinstance(value, int) else f"{value:.6g}"


class Calculator(Environment):
    """Answers each `calculate` call with the expression's value (or an error); a turn without calls ends it."""

    tools = CALCULATOR_TOOLS

    def step(self, answer: ParsedAnswer) -> EnvironmentStep:
        return EnvironmentStep(messages=[{"role": "tool", "content": self.result(call)} for call in answer.tool_calls])

    def result(self, call: ToolCall) -> str:
        """The tool's answer to one call: the value, or `error: ...`."""
        if call.name != TOOL_NAME:
            return f"error: unknown tool {call.name!r}; the tool is {TOOL_NAME}"
        expression = call.arguments.get("expression")
        if not isinstance(expression, str):
            return "error: calculate takes an `expression` string"
        try:
            return format_number(evaluate(expression))
        except (CalculatorError, OverflowError) as e:
            return f"error: {e}"
