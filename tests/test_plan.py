"""Tests for r1jax/plan.py (the memory planner) and r1jax/models/shapes.py (published shapes)."""

import dataclasses

import pytest

from r1jax import plan
from r1jax.models import num_params
from r1jax.models.shapes import PUBLISHED_PARAMS, PUBLISHED_SHAPES, published_config


@pytest.mark.parametrize("name", sorted(PUBLISHED_SHAPES))
def test_published_shapes_have_the_published_parameter_counts(name):
    count = num_params(published_config(name))
    assert abs(count / PUBLISHED_PARAMS[name] - 1) < 0.01


def test_fit_compares_the_peak_with_the_usable_share_of_memory():
    assert plan.fits(14 * plan.GIB, "v5e")  # 14 <= 0.9 * 16
    assert not plan.fits(15 * plan.GIB, "v5e")
    assert plan.fits(15 * plan.GIB, "v5e", usable=1.0)
    assert plan.fits(120 * plan.GIB, "H200") and not plan.fits(120 * plan.GIB, "H100")


def test_largest_micro_batch_solves_the_line_and_divides_the_batch():
    # temporaries 100 + 10 * rows; 500 bytes free -> at most 40 rows; 40 does not divide 96.
    rows = plan.largest_micro_batch((8, 16), (180, 260), 0, 500, step=8, minibatch_rows=96)
    assert rows == 32
    assert plan.largest_micro_batch((8, 16), (180, 260), 500, 500, step=8, minibatch_rows=96) == 0


def test_layer_extrapolation_continues_each_field_on_its_line():
    two = plan.Memory(arguments=20, outputs=10, aliased=10, temporaries=7, code=3)
    four = plan.Memory(arguments=40, outputs=20, aliased=20, temporaries=11, code=5)
    assert plan._extrapolate([two, four], (2, 4), 10) == plan.Memory(100, 50, 50, 23, 11)


def test_parse_mesh_defaults_fsdp_to_the_rest():
    assert plan.parse_mesh("data=2,tensor=2") == {"data": 2, "fsdp": -1, "tensor": 2}
    with pytest.raises(ValueError, match="unknown axis"):
        plan.parse_mesh("model=2")


def test_planner_cli_end_to_end_on_a_tiny_model_over_8_devices():
    lines = []
    result = plan.run(
        plan.parser().parse_args(
            [
                "--model",
                "tiny",
                "--devices",
                "8",
                "--mesh",
                "data=2,fsdp=4",
                "--batch",
                "32",
                "--group-size",
                "4",
                "--max-len",
                "96",
                "--prompt-len",
                "32",
                "--micro-batch",
                "16",
                "--accelerator",
                "v5e",
            ]
        ),
        out=lines.append,
    )
    text = "\n".join(lines)
    assert "update step" in text and "decode (+opt, ref)" in text
    assert "largest micro-batch 32 rows (4 per device)" in text
    assert result["fits"] == {"v5e": True}
    update = result["programs"]["update step"]
    assert update.arguments >= result["parts"]["parameters"] + result["parts"]["optimizer state"]
    assert update.temporaries > 0 and update.peak > update.temporaries


def test_planner_sets_lora_against_full_fine_tuning():
    lines = []
    args = plan.parser().parse_args(
        [
            "--model",
            "tiny",
            "--devices",
            "8",
            "--mesh",
            "data=2,fsdp=4",
            "--batch",
            "32",
            "--group-size",
            "4",
            "--max-len",
            "96",
            "--prompt-len",
            "32",
            "--accelerator",
            "v5e",
            "--skip-micro-batch",
            "--lora-rank",
            "8",
            "--lora-targets",
            "attention",
            "--lora-base-dtype",
            "bfloat16",
        ]
    )
    result = plan.run(args, out=lines.append)
    text = "\n".join(lines)
    assert "LoRA rank 8 on q_proj,k_proj,v_proj,o_proj (base bfloat16) against full" in text
    assert "decode (+opt, ref)" in text
    lora, full = result["lora"]["lora"], result["lora"]["full"]
    assert lora["reference"] == 0 and full["reference"] > 0  # the reference is the base
    assert lora["optimizer state"] < full["optimizer state"] / 5
    assert lora["parameters"] < full["parameters"]  # a bfloat16 base plus small adapters
    trainable = result["lora"]["trainable_params"]
    assert trainable["lora"] == 2 * 8 * (4 * 128 + 2 * (128 + 64))  # q, o; k, v; 2 layers
    parts = result["parts"]
    assert parts["parameters"] == parts["frozen base"] + parts["adapters"]
    update = result["programs"]["update step"]
    assert update.arguments >= parts["parameters"] + parts["optimizer state"]
    # bfloat16 sampler weights: the accelerator rows drop XLA:CPU's float32 copy of them
    cpu, accelerator = (
        result["programs"][f"decode {kind}"] for kind in ("(+opt, ref)", "(accelerator)")
    )
    extra = result["sampler_weights"]["float32_extra"]
    assert 0 < extra <= result["sampler_weights"]["gathered"]
    assert cpu.temporaries - accelerator.temporaries == extra
    assert "XLA:CPU multiplies 16-bit weights in float32" in text
    args.lora_rank = -1
    with pytest.raises(ValueError, match="--lora-rank -1"):
        plan.run(args)


def _tiny_sampler_setup(**model_overrides):
    from r1jax import algorithms
    from r1jax.learner.config import LearnerConfig

    model = plan.model_config("tiny", dtype="bfloat16", param_dtype="float32")
    model = dataclasses.replace(model, **model_overrides)
    learner = LearnerConfig(
        model=model,
        algorithm=algorithms.policy_gradient.CONFIG(),
        group_size=4,
        max_new_tokens=64,
    )
    return plan.setup(model, {"data": 1, "fsdp": 8, "tensor": 1}, learner)


@pytest.mark.multidevice
def test_decode_gathers_the_weights_once_however_many_segments():
    """The decode's temporaries hold one gathered copy of the weights, not one per segment.

    Each decode segment is its own ``lax.while_loop``; when the FSDP-sharded weights entered
    them sharded, XLA hoisted every loop's all-gathers out of it, so the program held one full
    copy of the weights per segment (8 by default: 215 GiB of temporaries for Qwen2.5-7B on
    ``fsdp=8``). The sampler now gathers them once, before the loops.
    """
    setup = _tiny_sampler_setup(vocab_size=8192)  # the weights dominate the temporaries
    temporaries = {}
    for segment in (64, 8):  # one decode loop, eight
        _, decode = plan.compile_sampler(
            setup,
            prompts=4,
            group_size=4,
            prompt_len=16,
            max_new_tokens=64,
            decode_segment_length=segment,
        )
        temporaries[segment] = decode.temporaries
    weights, upcast = plan.gathered_weight_bytes(setup)
    assert upcast == 0  # float32 params: XLA:CPU adds no float32 copy
    assert temporaries[8] < 1.25 * temporaries[64]
    # one gathered copy (and its bfloat16 cast) plus small buffers; eight copies before
    assert weights < temporaries[8] < 3 * weights


def test_planner_takes_an_int8_lora_base_and_shows_its_smaller_params():
    base_bytes = {}
    for dtype in ("bfloat16", "int8"):
        lines = []
        args = plan.parser().parse_args(
            [
                *("--model", "tiny", "--devices", "8", "--mesh", "fsdp=8", "--batch", "16"),
                *("--group-size", "4", "--max-len", "48", "--prompt-len", "16"),
                *("--accelerator", "v5e", "--skip-micro-batch", "--lora-rank", "4"),
                *("--lora-base-dtype", dtype),
                *(() if dtype == "int8" else ("--skip-sampler",)),
            ]
        )
        result = plan.run(args, out=lines.append)
        base_bytes[dtype] = result["parts"]["frozen base"]
        assert f"(base {dtype})" in "\n".join(lines)
    # int8 kernels (and float32 scales per output channel) beside bfloat16 embeddings
    assert base_bytes["int8"] < 0.7 * base_bytes["bfloat16"]
    with pytest.raises(ValueError, match=r"lora\.base_dtype='nf4'"):
        plan.run(plan.parser().parse_args([*args_for_lora("nf4")]))


def args_for_lora(base_dtype):
    return [
        "--model",
        "tiny",
        "--devices",
        "8",
        "--lora-rank",
        "4",
        "--lora-base-dtype",
        base_dtype,
    ]
