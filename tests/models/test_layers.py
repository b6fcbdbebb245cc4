"""Tests for r1jax/models/layers.py: the projection with its hand-written gradient."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.models import ModelConfig
from r1jax.models.layers import Block, linear, linear_by_rows, remat_block, transpose_copy
from r1jax.models.rope import rope_angles


@pytest.mark.parametrize(
    "x_shape, w_shape, num_in",
    [
        ((2, 3, 4), (4, 6), 1),  # narrow input: the input is transposed
        ((2, 3, 6), (6, 4), 1),  # narrow output: the gradient is transposed
        ((2, 3, 2, 4), (2, 4, 5), 2),  # two contracted dims (an output projection)
    ],
)
def test_linear_gradients_equal_autodiff_of_a_plain_contraction(x_shape, w_shape, num_in):
    kx, kw, kc = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, x_shape)
    w = jax.random.normal(kw, w_shape)
    cotangent = jax.random.normal(kc, x_shape[: len(x_shape) - num_in] + w_shape[num_in:])
    dims = (tuple(range(len(x_shape) - num_in, len(x_shape))), tuple(range(num_in)))

    def reference(x, w):
        return jnp.sum(jax.lax.dot_general(x, w, (dims, ((), ()))) * cotangent)

    def ours(x, w):
        return jnp.sum(linear(x, w, num_in, jnp.float32) * cotangent)

    np.testing.assert_allclose(ours(x, w), reference(x, w), rtol=1e-6)
    for got, want in zip(jax.grad(ours, (0, 1))(x, w), jax.grad(reference, (0, 1))(x, w)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_linear_in_bfloat16_keeps_float32_outputs_and_param_dtype_gradients():
    x = jnp.ones((3, 4), jnp.float32)
    w = jnp.full((4, 2), 0.5, jnp.float32)
    out, grads = jax.value_and_grad(
        lambda x, w: jnp.sum(linear(x, w, 1, jnp.bfloat16)), argnums=(0, 1)
    )(x, w)
    assert out.dtype == jnp.float32 and float(out) == 12.0
    assert grads[0].dtype == grads[1].dtype == jnp.float32
    np.testing.assert_array_equal(grads[1], np.full((4, 2), 3.0))


def _dot_operand_dtypes(hlo_text: str) -> list[tuple[str, ...]]:
    """The element types of every dot's operands in a compiled module's text."""
    types = dict(re.findall(r"%([\w.\-]+)(?: = |: )(\w+)\[", hlo_text))
    operands = re.findall(r" dot\(([^)]*)\)", hlo_text)
    return [tuple(types[name.strip().lstrip("%")] for name in ops.split(",")) for ops in operands]


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="pins an XLA:CPU lowering")
@pytest.mark.parametrize(
    "projection, x_shape, w_shape",
    [
        (lambda x, w: linear(x, w, 1, jnp.bfloat16), (256, 64), (64, 192)),  # x transposed
        (lambda x, w: linear(x, w, 1, jnp.bfloat16), (256, 192), (192, 64)),  # grad transposed
        (lambda x, w: linear_by_rows(x, w, jnp.bfloat16), (32, 64), (512, 64)),  # grad
        (lambda x, w: linear_by_rows(x, w, jnp.bfloat16), (512, 16), (64, 16)),  # x, product
    ],
)
def test_bfloat16_projection_gradients_compile_to_bfloat16_matmuls(projection, x_shape, w_shape):
    # XLA:CPU upcasts a 16-bit dot to a float32 one (about 4x slower on a machine with bf16
    # matmul units) when an operand is a transpose it folds into the dot.
    x = jnp.ones(x_shape, jnp.float32)
    w = jnp.ones(w_shape, jnp.float32)
    grad = jax.jit(jax.grad(lambda x, w: jnp.sum(projection(x, w) ** 2), argnums=(0, 1)))
    dots = _dot_operand_dtypes(grad.lower(x, w).compile().as_text())
    assert len(dots) == 3  # forward, input gradient, weight gradient
    assert all(dtypes == ("bf16", "bf16") for dtypes in dots), dots


def test_transpose_copy_is_the_transpose():
    x = jnp.arange(24.0).reshape(4, 6)
    np.testing.assert_array_equal(jax.jit(transpose_copy)(x), x.T)


@pytest.mark.parametrize("rows, width", [(6, 4), (3, 8), (8, 2)])  # last: x is transposed
def test_linear_by_rows_gradients_equal_autodiff(rows, width):
    kx, kw, kc = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(kx, (2, 3, width))
    w_rows = jax.random.normal(kw, (rows, width))
    cotangent = jax.random.normal(kc, (2, 3, rows))

    def reference(x, w_rows):
        return jnp.sum(jnp.einsum("bsi,oi->bso", x, w_rows) * cotangent)

    def ours(x, w_rows):
        return jnp.sum(linear_by_rows(x, w_rows, jnp.float32) * cotangent)

    np.testing.assert_allclose(ours(x, w_rows), reference(x, w_rows), rtol=1e-6)
    for got, want in zip(jax.grad(ours, (0, 1))(x, w_rows), jax.grad(reference, (0, 1))(x, w_rows)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("order_by_data", [True, False], ids=["cpu_order", "barrier"])
def test_remat_block_gives_the_plain_blocks_output_and_gradients(order_by_data):
    config = ModelConfig.preset("tiny", architecture="qwen3", qk_norm=True)
    x = jax.random.normal(jax.random.key(0), (2, 16, config.hidden_size))
    cos, sin = rope_angles(jnp.broadcast_to(jnp.arange(16), (2, 16)), config)
    mask = jnp.broadcast_to(jnp.tril(jnp.ones((16, 16), bool)), (2, 16, 16))
    mask = mask.at[1, :, :3].set(False)  # left padding in row 1

    class Layer(nn.Module):
        remat: bool

        @nn.compact
        def __call__(self, x):
            block = Block(config, name="block")
            if self.remat and not self.is_initializing():
                return remat_block(block, x, cos, sin, mask, order_by_data=order_by_data)
            return block(x, cos, sin, mask, None, None)[0]

    params = Layer(False).init(jax.random.key(1), x)["params"]
    params = jax.tree.map(
        lambda p: p + 0.05 * jax.random.normal(jax.random.key(2), p.shape), params
    )

    def loss(remat, params, x):
        return jnp.sum(jnp.sin(Layer(remat).apply({"params": params}, x)))

    want = jax.jit(jax.value_and_grad(lambda p, x: loss(False, p, x), argnums=(0, 1)))(params, x)
    got = jax.jit(jax.value_and_grad(lambda p, x: loss(True, p, x), argnums=(0, 1)))(params, x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
