"""The torch twin on a device: ``device="cpu"`` is the default bit for bit, a device that
cannot be used is refused before any work, and on a CUDA machine every catalogue model keeps
its verdicts (float64 and float32, TF32 off). The CUDA tests skip with the reason when
``torch.cuda.is_available()`` is False (CI machines have no GPU)."""

import numpy as np
import pytest
import torch

from parity.catalogue import zoo
from parity.catalogue.checks import compare
from parity.runtime import check_device, exact_float32_matmul

CUDA = torch.cuda.is_available()
NO_CUDA = "CUDA not available (torch.cuda.is_available() is False): the GPU run needs a " \
          "CUDA machine"


def test_cpu_is_the_default_bit_for_bit():
    spec = zoo.get("spiral003")          # BatchNorm, Dropout, Adam: every kind of quantity
    a = compare(spec, "float32", 0)
    b = compare(spec, "float32", 0, device="cpu")
    assert a.loss_numpy == b.loss_numpy and a.loss_torch == b.loss_torch, "loss, device=cpu"
    for k, v in a.arrays["params_after_torch"].items():
        assert np.array_equal(v, b.arrays["params_after_torch"][k]), f"param {k}, device=cpu"


@pytest.mark.parametrize("device, pattern", [
    ("tpu", r"device 'tpu'"), ("cuda:x", r"device 'cuda:x'"), ("meta", r"only 'cpu' and")])
def test_unusable_device_is_refused(device, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_device(device)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA: the refusal cannot be shown here")
def test_cuda_without_a_gpu_is_refused_in_one_line(capsys):
    from parity.cli import main
    code = main(["check", "cs231n-linear", "--device", "cuda"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1 and "CUDA is not available" in err, err


def test_tf32_is_off_inside_and_restored_after():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision())
    torch.set_float32_matmul_precision("high")
    try:
        with exact_float32_matmul():
            assert torch.backends.cuda.matmul.allow_tf32 is False
            assert torch.backends.cudnn.allow_tf32 is False
            assert torch.get_float32_matmul_precision() == "highest"
        assert torch.get_float32_matmul_precision() == "high", "precision not restored"
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before[0]
        torch.set_float32_matmul_precision(before[1])


@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(zoo.CATALOGUE))
def test_catalogue_parity_on_cuda(name, dtype):
    result = compare(zoo.get(name), dtype, 0, device="cuda")
    assert result.passed, f"{name} {dtype} on cuda:\n{result.report()}"
