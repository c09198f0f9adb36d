"""--target and --precision on every command that runs a model: vclipc run,
eval, retrieval, encode-text, sweep, train and demo.  Where the target is not
here (no CUDA device in CI) the command says so, naming the target and the
reason, and exits 1 without a crash; a target or precision that does not
exist is a usage error (exit 2); training says at once why it cannot train
there; --target cpu is the default, bit for bit; --help tells of both
options."""
import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import ROOT, Fixture, assert_clean_exit, run_tool

VISUAL = Fixture("openai_visual_fullvocab").model
TEXT = Fixture("openai_text_fullvocab").model
VIDEOS = f"{ROOT}/tests/fixtures/videos"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("targets")
    (d / "list.csv").write_text("arm_wrestling.mp4,0\ncleaning_pool.mp4,1\n")
    (d / "classes.txt").write_text("arm wrestling\ncleaning pool\n")
    (d / "caps.jsonl").write_text('{"video": "arm_wrestling.mp4", "caption": "two men arm wrestle"}\n'
                                  '{"video": "cleaning_pool.mp4", "caption": "a man cleans a pool"}\n')
    return d


def commands(d, out):
    """Each command with arguments that reach the model."""
    return {
        "encode-text": ["encode-text", "--text-model", TEXT, "--classes", d / "classes.txt", "-o", out / "c.safetensors"],
        "eval": ["eval", "--visual", VISUAL, "--text-model", TEXT, "--classes", d / "classes.txt", "--list", d / "list.csv",
                 "--root", VIDEOS, "--no-cache"],
        "retrieval": ["retrieval", "--visual", VISUAL, "--text-model", TEXT, "--captions", d / "caps.jsonl", "--root", VIDEOS],
        "sweep": ["sweep", "--clip", VISUAL, "--finetuned", VISUAL, "--ratios", "0:1:1", "--text-model", TEXT,
                  "--zero-shot-list", d / "list.csv", "--zero-shot-classes", d / "classes.txt", "--close-list", d / "list.csv",
                  "--close-classes", d / "classes.txt", "--root", VIDEOS],
    }


def no_device_here():
    p = run_tool("opt", "vclipc", "run", "--precision", "fp32", VISUAL, "--target", "cuda", "--input", "image=/nonexistent.npy")
    return "no CUDA" in p.stderr


@pytest.mark.parametrize("cmd", ["encode-text", "eval", "retrieval", "sweep"])
def test_unavailable_target_is_named(files, tmp_path, cmd, variant):
    if not no_device_here():
        pytest.skip("this machine has a CUDA device: the unavailable-target message cannot be seen here")
    p = run_tool(variant, "vclip-run", *commands(files, tmp_path)[cmd], "--target", "cuda")
    assert_clean_exit(p)
    assert p.returncode == 1 and "--target cuda:" in p.stderr and "CUDA" in p.stderr.split("--target cuda:")[1], p.stderr


@pytest.mark.parametrize("cmd", ["encode-text", "eval", "retrieval", "sweep", "train", "demo"])
def test_unknown_target_and_precision_are_usage_errors(files, tmp_path, cmd):
    base = commands(files, tmp_path).get(cmd, [cmd])
    p = run_tool("opt", "vclip-run", *base, "--target", "tpu")
    assert p.returncode == 2 and "--target is cpu or cuda" in p.stderr, p.stderr
    p = run_tool("opt", "vclip-run", *base, "--precision", "fp16")
    assert p.returncode == 2 and "fp16 is for --target cuda" in p.stderr, p.stderr
    help_text = run_tool("opt", "vclip-run", cmd, "--help", check=True).stdout
    assert "--target" in help_text and "--precision" in help_text, help_text


@pytest.mark.parametrize("cmd", ["train", "demo"])
def test_training_on_cuda_without_a_device_says_so_at_once(cmd):
    """Before any data is read or model built: the target and why it is not there."""
    if not no_device_here():
        pytest.skip("this machine has a CUDA device: the unavailable-target message cannot be seen here")
    p = run_tool("opt", "vclip-run", cmd, "--target", "cuda")
    assert_clean_exit(p)
    assert "--target cuda: cannot train there" in p.stderr and "CUDA" in p.stderr.split("there:")[1], p.stderr


@pytest.mark.parametrize("cmd", ["train", "demo"])
def test_auto_precision_is_for_inference(cmd, tmp_path):
    """--precision auto (inference's default) picks by CPU; training says its choices instead."""
    p = run_tool("opt", "vclip-run", cmd, "--precision", "auto", "--out", tmp_path / "out")
    assert_clean_exit(p)
    assert ("--precision auto is for inference: train in fp32 or bf16" if cmd == "train"
            else "the demo fine-tunes in fp32 or bf16") in p.stderr, p.stderr
    assert not (tmp_path / "out").exists()


def test_target_cpu_is_the_default(files, tmp_path):
    args = commands(files, tmp_path)["encode-text"]
    run_tool("opt", "vclip-run", *args, check=True)
    default = load_file(str(tmp_path / "c.safetensors"))
    run_tool("opt", "vclip-run", *args[:-1], tmp_path / "cpu.safetensors", "--target", "cpu", "--precision", "auto", check=True)
    explicit = load_file(str(tmp_path / "cpu.safetensors"))
    assert default.keys() == explicit.keys()
    for k in default:
        assert np.array_equal(default[k], explicit[k]), k
