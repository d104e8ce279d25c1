"""The CUDA sources of stdp_plugins/backends/cuda: they ship with the package, nvcc compiles
every one for sm_80 and sm_90 with the runtime's options, NVRTC (what ``cupy.RawModule``
compiles with, without host headers) compiles every one too, and the launchers' parameter
tables match the compiled entry points. nvcc and NVRTC are part of the test environment (CI
machines have the CUDA toolkit; NVRTC also comes with torch's CUDA wheels), so these tests
run without a GPU and never skip."""

from __future__ import annotations

import ctypes
import glob
import os
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from stdp_plugins.backends import kernel_source
from stdp_plugins.backends._cuda_kernels import KERNELS, NVRTC_OPTIONS, cuda_source

CUDA_DIR = Path(str(resources.files("stdp_plugins.backends"))) / "cuda"
CU_FILES = sorted(CUDA_DIR.glob("*.cu"))
ARCHITECTURES = ("sm_80", "sm_90")


def nvcc() -> str:
    path = shutil.which("nvcc")
    if path is None:
        pytest.fail("nvcc is not on PATH: install the CUDA toolkit (CI machines have it) to check the kernels")
    return path


def test_every_kernel_has_its_source_and_every_source_a_kernel():
    assert sorted({kernel.file for kernel in KERNELS.values()}) == [p.name for p in CU_FILES]
    for kernel in KERNELS.values():
        assert f'extern "C" __global__ void {kernel.name}(' in kernel_source(kernel.name) == cuda_source(kernel.file)
    assert kernel_source() == cuda_source("fused_stdp.cu")
    with pytest.raises(ValueError, match="kernel must be one of 'fused_stdp_update', .*, got 'fused'"):
        kernel_source("fused")
    assert {"host_shim.h", "host_launchers.cpp"} <= {p.name for p in CUDA_DIR.iterdir()}


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("source", CU_FILES, ids=lambda p: p.name)
def test_nvcc_compiles_every_kernel(source, arch, tmp_path):
    target = tmp_path / f"{source.stem}.{arch}.cubin"
    result = subprocess.run(
        [nvcc(), f"-arch={arch}", "-cubin", *NVRTC_OPTIONS, "-Werror", "all-warnings", str(source), "-o", str(target)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert target.stat().st_size > 0


def _declared_parameter_names(source: str, name: str) -> list:
    """Names of an entry point's parameters, read from its C declaration."""
    match = re.search(rf"void\s+{name}\s*\((.*?)\)\s*\{{", source, re.S)
    assert match is not None, name
    declaration = re.sub(r"//[^\n]*", "", match.group(1))
    return [re.findall(r"\w+", part)[-1] for part in declaration.split(",")]


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_parameter_tables_match_the_compiled_kernels(name, tmp_path):
    kernel = KERNELS[name]
    ptx_path = tmp_path / "kernel.ptx"
    subprocess.run([nvcc(), "-arch=sm_80", "--ptx", str(CUDA_DIR / kernel.file), "-o", str(ptx_path)], check=True,
                   capture_output=True)
    entry = re.search(rf"\.entry\s+{name}\s*\((.*?)\)", ptx_path.read_text(), re.S)
    assert entry is not None, "the PTX has no unmangled entry point of that name"
    ptx_types = re.findall(r"\.param\s+\.(\w+)", entry.group(1))
    expected = {"pointer": "u64", "int": "u32", "long": "u64", "float": "f32", "double": "f64"}
    assert ptx_types == [expected[kind] for _, kind in kernel.parameters]
    assert _declared_parameter_names(cuda_source(kernel.file), name) == [n for n, _ in kernel.parameters]


def nvrtc() -> ctypes.CDLL:
    """The NVRTC library of torch's CUDA wheels (``nvidia/cu*/lib``) or of the CUDA toolkit."""
    folders = [os.path.join(os.path.dirname(os.path.realpath(shutil.which("nvcc") or "")), "..", "lib64")]
    try:
        import nvidia

        folders += [os.path.join(root, "cu*", "lib") for root in nvidia.__path__]
        folders += [os.path.join(root, "cuda_nvrtc", "lib") for root in nvidia.__path__]
    except ImportError:  # no CUDA wheels: the toolkit's copy only
        pass
    found = sorted(path for folder in folders for path in glob.glob(os.path.join(folder, "libnvrtc.so*")))
    if not found:
        pytest.fail(f"NVRTC (libnvrtc.so) was not found in {folders}: install torch's CUDA wheel or the CUDA toolkit")
    return ctypes.CDLL(found[0])


@pytest.mark.parametrize("arch", ("compute_80", "compute_90"))
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_nvrtc_compiles_every_kernel_as_cupy_does(name, arch):
    library, kernel = nvrtc(), KERNELS[name]
    program = ctypes.c_void_p()
    assert library.nvrtcCreateProgram(ctypes.byref(program), cuda_source(kernel.file).encode(), kernel.file.encode(),
                                      0, None, None) == 0
    options = [option.encode() for option in (*NVRTC_OPTIONS, f"-arch={arch}")]
    status = library.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    library.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    library.nvrtcGetProgramLog(program, log)
    assert status == 0, log.value.decode(errors="replace")
    library.nvrtcGetPTXSize(program, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    library.nvrtcGetPTX(program, ptx)
    library.nvrtcDestroyProgram(ctypes.byref(program))
    assert f".entry {name}(" in ptx.value.decode()
