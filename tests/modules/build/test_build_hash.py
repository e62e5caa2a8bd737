"""modules/build computes the image tag in Terraform; it must be the tag tools/build.py
computes for the same tree, or `terraform apply` would rebuild on every run (or never).
Real Terraform core plans the module through tftest (it needs no provider) for several
trees."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from testkit import plans
from tools import build

ROOT = Path(__file__).resolve().parents[3]

TREES: dict[str, dict[str, str]] = {
    "plain": {"Dockerfile": "FROM scratch\n", "a.txt": "a", "sub/dir/b.bin": "b\x00\n"},
    "dockerignore": {
        "Dockerfile": "FROM scratch\nCOPY . /\n",
        ".dockerignore": (
            "# comment\n\n**/__pycache__\n*.egg-info\n/docs/\n!docs/keep.md\n*.md\n"
            "Dockerfile\n.dockerignore\n[xy]?.log\n"
        ),
        "README.md": "r",
        "pkg/NOTES.md": "n",
        "pkg/__pycache__/m.pyc": "p",
        "__pycache__/top.pyc": "p",
        "thing.egg-info/PKG-INFO": "i",
        "docs/keep.md": "k",
        "docs/drop.txt": "d",
        "x1.log": "l",
        "z1.log": "l",
        ".hidden/file": "h",
        "name with spaces.txt": "s",
    },
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("build-trees")
    made = {name: write_tree(work / name, files) for name, files in TREES.items()}
    return {"app": ROOT / "app", **made}


@pytest.fixture(scope="module")
def planned_tags(
    trees: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, str]]:
    """{tree name: (image_tag, content_hash)} as Terraform plans them."""
    work = tmp_path_factory.mktemp("build-hash")
    root = work / "root"
    root.mkdir()
    config = {
        "module": {
            name: {
                "source": os.path.relpath(ROOT / "modules/build", root),
                "repository_url": f"127.0.0.1:5000/{name}",
                "source_dir": str(tree),
                "aws_region": "us-east-1",
            }
            for name, tree in trees.items()
        },
        "output": {
            name: {"value": [f"${{module.{name}.image_tag}}", f"${{module.{name}.content_hash}}"]}
            for name in trees
        },
    }
    (root / "main.tf.json").write_text(json.dumps(config))
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_CLI_CONFIG_FILE": str(work / "none.tfrc")}
    test = plans.terraform_test(root, env)
    with plans.terraform_errors("init"):
        test.init(backend=False)
    with plans.terraform_errors("plan"):
        plan = test.plan(output=True)
    result = {name: (value[0], value[1]) for name, value in plan.outputs.items()}
    shutil.rmtree(root / ".terraform", ignore_errors=True)
    return result


@pytest.mark.parametrize("name", ["app", *TREES])
def test_terraform_hash_equals_build_py_hash(
    trees: dict[str, Path], planned_tags: dict[str, tuple[str, str]], name: str
) -> None:
    tag, content_hash = planned_tags[name]
    assert content_hash == build.content_hash(trees[name])
    assert tag == build.image_tag(trees[name], "linux/amd64")


def test_the_tricky_tree_really_excludes_files(trees: dict[str, Path]) -> None:
    # Guards the test above: equal hashes mean little if nothing was excluded.
    assert build.context_files(trees["dockerignore"]) == [
        ".dockerignore",
        ".hidden/file",
        "Dockerfile",
        "docs/keep.md",
        "name with spaces.txt",
        "pkg/NOTES.md",
        "z1.log",
    ]
