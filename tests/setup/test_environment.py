"""The locked environment: the lock satisfies requirements.in, torch is the CPU build and its own install file pins
the same wheel, and the README, .ci/run and the GitHub workflows install with the same commands."""
import re
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _entries(path: Path) -> tuple[dict[str, tuple[Version, set[str]]], list[str]]:
    """A hashed requirements file -> ({name: (pinned version, sha256 hashes)}, option lines such as --index-url)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins, options = {}, []
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            options.append(line)
            continue
        spec, *hashes = line.split()
        name, version = spec.split("==")
        assert hashes and all(h.startswith("--hash=sha256:") for h in hashes), f"{path.name}: {spec} unhashed"
        pins[canonicalize_name(name)] = (Version(version), {h.removeprefix("--hash=sha256:") for h in hashes})
    return pins, options


def test_lock_satisfies_every_top_level_requirement():
    lock, _ = _entries(REPO / "requirements.txt")
    for line in (REPO / "requirements.in").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            name = canonicalize_name(req.name)
            assert name in lock, f"{req.name} is in requirements.in but not locked: run scripts/lock.sh"
            assert req.specifier.contains(lock[name][0]), (line, lock[name][0])


def test_torch_is_the_cpu_build_and_both_files_pin_the_same_wheel():
    lock, lock_options = _entries(REPO / "requirements.txt")
    torch_file, torch_options = _entries(REPO / "requirements-torch-cpu.txt")
    assert lock["torch"][0].local == "cpu"
    assert not [n for n in lock if n.startswith("nvidia-") or n == "triton"], "a CUDA package is locked"
    assert torch_file == {"torch": lock["torch"]}
    assert torch_options == [f"--index-url {CPU_INDEX}"] and lock_options == []


def _pip_lines(text: str) -> list[str]:
    return [" ".join(line.split(" #")[0].split()) for line in text.splitlines()
            if line.strip().startswith("pip install")]


def test_readme_ci_and_workflows_install_with_the_same_commands():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    action = yaml.safe_load((REPO / ".github/actions/locked-env/action.yml").read_text())
    action_runs = "\n".join(step.get("run", "") for step in action["runs"]["steps"])
    expected = _pip_lines(first_block)
    assert len(expected) == 3 and all("--require-hashes" in line for line in expected), expected
    assert _pip_lines((REPO / ".ci" / "run").read_text()) == expected
    assert _pip_lines(action_runs) == expected
