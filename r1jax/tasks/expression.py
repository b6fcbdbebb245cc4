"""Arithmetic expressions from model output, parsed by hand and never ``eval``-ed.

Two evaluators live here:

* ``parse`` / ``evaluate``: the countdown verifier's safe grammar (TinyZero verl/utils/reward_score/countdown.py, without ``eval``). Only
  non-negative integer literals (no sign, no decimal point, no leading zeros), binary
  ``+ - * /`` with the usual precedence and left associativity, parentheses and ASCII
  whitespace. ``**``, ``//``, unary operators, implicit multiplication and empty or unbalanced
  parentheses are rejected. Values are exact ``fractions.Fraction``; division by zero is an
  error. Length and nesting are capped, so every call is fast.
* ``emulate_python_eval``: what TinyZero's ``eval(expr, {"__builtins__": None}, {})`` would
  return for an expression over TinyZero's character whitelist ``[\\d+\\-*/().\\s]``, computed by
  a small interpreter of that subset of Python (floats, ``**``, ``//``, unary signs, ...). It is
  used only for the ``legacy_score`` diagnostic. Integer powers or products that would need more
  than ``LEGACY_MAX_INT_BITS`` bits are reported as ``LEGACY_HANG`` instead of being computed.

Task rules (which numbers, which target, which score) live in ``countdown.py``.
"""

import dataclasses
import math
from fractions import Fraction

MAX_EXPRESSION_CHARS = 256
MAX_DEPTH = 32

LEGACY_MAX_CHARS = 1000
LEGACY_MAX_DEPTH = 50
LEGACY_MAX_INT_BITS = 1 << 20
LEGACY_HANG = "hang"
LEGACY_NOT_EMULATED = "not_emulated"

_ASCII_SPACE = " \t\n\r\f\v"


class ExpressionError(ValueError):
    """A rejected expression; ``kind`` is a short machine-readable cause."""

    def __init__(self, kind: str, message: str = ""):
        super().__init__(message or kind)
        self.kind = kind


@dataclasses.dataclass(frozen=True)
class Node:
    """A binary operation in a parsed expression; leaves are plain ``int``s."""

    op: str
    left: "Node | int"
    right: "Node | int"


def tokenize(text: str) -> list:
    """Splits ``text`` into ints and the one-character operators ``+ - * / ( )``.

    Raises:
      ExpressionError: on any other character, ``**``, ``//``, a decimal point, a literal with a
        leading zero, or text longer than ``MAX_EXPRESSION_CHARS``.

    Example:
      >>> tokenize("(12 + 3)*4")
      ['(', 12, '+', 3, ')', '*', 4]
    """
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError("too_long", f"expression longer than {MAX_EXPRESSION_CHARS}")
    tokens = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in _ASCII_SPACE:
            i += 1
        elif "0" <= char <= "9":
            j = i
            while j < n and "0" <= text[j] <= "9":
                j += 1
            literal = text[i:j]
            if len(literal) > 1 and literal[0] == "0":
                raise ExpressionError("leading_zero", f"literal {literal!r}")
            if j < n and text[j] == ".":
                raise ExpressionError("decimal", "decimal literals are not allowed")
            tokens.append(int(literal))
            i = j
        elif char in "+-*/()":
            if char in "*/" and i + 1 < n and text[i + 1] == char:
                raise ExpressionError("power" if char == "*" else "floor_division", char * 2)
            tokens.append(char)
            i += 1
        elif char == ".":
            raise ExpressionError("decimal", "decimal literals are not allowed")
        else:
            raise ExpressionError("bad_character", f"character {char!r}")
    return tokens


class _Parser:
    def __init__(self, tokens: list):
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def expression(self) -> "Node | int":
        node = self.term()
        while self.peek() in ("+", "-"):
            op = self.tokens[self.pos]
            self.pos += 1
            node = Node(op, node, self.term())
        return node

    def term(self) -> "Node | int":
        node = self.factor()
        while self.peek() in ("*", "/"):
            op = self.tokens[self.pos]
            self.pos += 1
            node = Node(op, node, self.factor())
        return node

    def factor(self) -> "Node | int":
        token = self.peek()
        if isinstance(token, int):
            self.pos += 1
            return token
        if token == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExpressionError("too_deep", f"more than {MAX_DEPTH} nested parentheses")
            self.pos += 1
            if self.peek() == ")":
                raise ExpressionError("empty_parentheses")
            node = self.expression()
            if self.peek() != ")":
                raise ExpressionError("unbalanced", "missing ')'")
            self.pos += 1
            self.depth -= 1
            return node
        if token in ("+", "-"):
            raise ExpressionError("unary", f"unary {token!r}")
        if token is None:
            raise ExpressionError("incomplete", "expression ends early")
        raise ExpressionError("syntax", f"unexpected {token!r}")


def parse(text: str) -> "Node | int":
    """Parses ``text`` with the safe grammar.

    Raises:
      ExpressionError: if ``text`` is not a valid expression.

    Example:
      >>> parse("1 + 2 * 3")
      Node(op='+', left=1, right=Node(op='*', left=2, right=3))
    """
    parser = _Parser(tokenize(text))
    if parser.peek() is None:
        raise ExpressionError("empty")
    node = parser.expression()
    token = parser.peek()
    if token is not None:
        if token == ")":
            raise ExpressionError("unbalanced", "unmatched ')'")
        raise ExpressionError("implicit_multiplication", f"unexpected {token!r}")
    return node


def literals(node: "Node | int") -> list[int]:
    """The integer literals of a parsed expression, left to right."""
    if isinstance(node, int):
        return [node]
    return literals(node.left) + literals(node.right)


def evaluate(node: "Node | int") -> Fraction:
    """The exact value of a parsed expression.

    Raises:
      ExpressionError: with ``kind == "division_by_zero"``.

    Example:
      >>> evaluate(parse("(1 + 2) / 3 - 4 / 8"))
      Fraction(1, 2)
    """
    if isinstance(node, int):
        return Fraction(node)
    left, right = evaluate(node.left), evaluate(node.right)
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    if node.op == "*":
        return left * right
    if right == 0:
        raise ExpressionError("division_by_zero")
    return left / right


# --------------------------------------------------------------------------------------------
# Emulation of Python's eval over TinyZero's whitelist, for the legacy diagnostic.
# --------------------------------------------------------------------------------------------


class _EvalFailure(Exception):
    """Python's eval would raise (SyntaxError, TypeError, ZeroDivisionError, OverflowError...)."""


class _Hang(Exception):
    """Python's eval would build an integer too large to compute in reasonable time."""


def _python_tokens(text: str) -> list:
    tokens = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in " \t\f":
            i += 1
            continue
        is_digit = "0" <= char <= "9"
        if is_digit or (char == "." and i + 1 < n and "0" <= text[i + 1] <= "9"):
            j = i
            while j < n and "0" <= text[j] <= "9":
                j += 1
            is_float = False
            if j < n and text[j] == ".":
                is_float = True
                j += 1
                while j < n and "0" <= text[j] <= "9":
                    j += 1
            literal = text[i:j]
            if is_float:
                tokens.append(float(literal))
            else:
                if len(literal) > 1 and literal[0] == "0" and literal.strip("0"):
                    raise _EvalFailure("leading zeros in decimal integer literal")
                if len(literal) > 4300:
                    raise _EvalFailure("integer literal too long")
                tokens.append(int(literal))
            i = j
            continue
        for op in ("**", "//", "+", "-", "*", "/", "(", ")"):
            if text.startswith(op, i):
                tokens.append(op)
                i += len(op)
                break
        else:
            raise _EvalFailure(f"invalid character {char!r}")
    return tokens


def _check_int_size(value):
    if isinstance(value, int) and value.bit_length() > LEGACY_MAX_INT_BITS:
        raise _Hang()
    return value


def _apply(op: str, left, right):
    if isinstance(left, tuple) or isinstance(right, tuple):
        raise _EvalFailure("arithmetic on a tuple")
    try:
        if op == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and abs(left) > 1
                and right * math.log2(abs(left)) > LEGACY_MAX_INT_BITS
            ):
                raise _Hang()
            return _check_int_size(left**right)
        if op == "*":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() + right.bit_length() > LEGACY_MAX_INT_BITS
            ):
                raise _Hang()
            return left * right
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "/":
            return left / right
        if op == "//":
            return left // right
    except (ArithmeticError, TypeError, ValueError) as error:
        raise _EvalFailure(str(error)) from error
    raise AssertionError(op)


class _PythonSubsetParser:
    """Recursive descent over Python's grammar restricted to numbers, operators and parens."""

    def __init__(self, tokens: list):
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self):
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def enter(self):
        self.depth += 1
        if self.depth > LEGACY_MAX_DEPTH:
            raise _Hang()  # not emulated; reported like a hang

    def expression(self):
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            value = _apply(op, value, self.term())
        return value

    def term(self):
        value = self.factor()
        while self.peek() in ("*", "/", "//"):
            op = self.take()
            value = _apply(op, value, self.factor())
        return value

    def factor(self):
        if self.peek() in ("+", "-"):
            op = self.take()
            self.enter()
            operand = self.factor()
            self.depth -= 1
            if isinstance(operand, tuple):
                raise _EvalFailure("unary operator on a tuple")
            return operand if op == "+" else -operand
        return self.power()

    def power(self):
        base = self.atom()
        if self.peek() == "(":
            raise _EvalFailure("a number is not callable")
        if self.peek() == "**":
            self.take()
            self.enter()
            exponent = self.factor()
            self.depth -= 1
            return _apply("**", base, exponent)
        return base

    def atom(self):
        token = self.peek()
        if isinstance(token, (int, float)):
            self.pos += 1
            return token
        if token == "(":
            self.take()
            if self.peek() == ")":
                self.take()
                return ()
            self.enter()
            value = self.expression()
            self.depth -= 1
            if self.peek() != ")":
                raise _EvalFailure("unbalanced parentheses")
            self.take()
            return value
        raise _EvalFailure(f"unexpected {token!r}")


def emulate_python_eval(text: str):
    """What TinyZero's ``eval`` returns for a whitelisted expression, without calling ``eval``.

    Returns:
      the value (int, float, complex or ``()``), ``None`` where Python would raise,
      ``LEGACY_HANG`` where it would build a gigantic integer (e.g. ``9**9**9``), or
      ``LEGACY_NOT_EMULATED`` for text longer than ``LEGACY_MAX_CHARS`` or nested deeper than
      ``LEGACY_MAX_DEPTH``.

    Example:
      >>> emulate_python_eval("-2**2 + 7//2"), emulate_python_eval("1/0"), emulate_python_eval("9**9**9")
      (-1, None, 'hang')
    """
    if len(text) > LEGACY_MAX_CHARS:
        return LEGACY_NOT_EMULATED
    try:
        parser = _PythonSubsetParser(_python_tokens(text))
        if parser.peek() is None:
            return None
        value = parser.expression()
        if parser.peek() is not None:
            return None
        return value
    except _EvalFailure:
        return None
    except _Hang:
        return LEGACY_HANG if parser.depth <= LEGACY_MAX_DEPTH else LEGACY_NOT_EMULATED
