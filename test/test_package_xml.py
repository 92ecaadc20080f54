"""Both package.xml files: the format-3 rules, the licence, the version, and a declared dependency for every import.

Offline: ``catkin_pkg`` (the parser colcon, rosdep and bloom use) checks well-formedness and the REP 149
rules; the rest is checked here. Every third-party module imported under ``spatial_vlm_ros/`` and ``launch/``
needs an exec dependency, one imported only under ``test/`` an exec or test dependency. A module with no
rosdep key must be pinned in a requirements file and named in a package.xml comment.
"""
from __future__ import annotations

import ast
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from catkin_pkg.changelog import get_changelog_from_path
from catkin_pkg.package import InvalidPackage, parse_package

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_XML = ROOT / "package.xml"
INTERFACES = ROOT / "spatial_vlm_interfaces"
REQUIREMENTS = (ROOT / "requirements.txt", ROOT / "requirements-nodeps.txt")
PIP = "pip:"
_FROM = re.compile(r"^[ \t]*from[ \t]+([A-Za-z_]\w*)[\w.]*[ \t]+import[ \t(]", re.MULTILINE)   # not relative
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w.]+(?:[ \t]+as[ \t]+\w+)?(?:[ \t]*,[ \t]*[\w.]+(?:[ \t]+as[ \t]+\w+)?)*)"
                     r"[ \t]*(?:#.*)?$", re.MULTILINE)

#: third-party top-level module -> its rosdep key (ros/rosdistro rosdep/python.yaml), or ``pip:<distribution>``
#: where rosdep has none
MODULE_KEYS = {
    "numpy": "python3-numpy", "scipy": "python3-scipy", "cv2": "python3-opencv", "yaml": "python3-yaml",
    "open3d": "python3-open3d-pip", "tqdm": "python3-tqdm", "matplotlib": "python3-matplotlib",
    "PIL": "python3-pil", "trimesh": "python3-trimesh-pip", "torch": "python3-pytorch-pip",
    "transformers": "python3-transformers-pip", "onnxruntime": "python3-onnxruntime-gpu-pip",
    "pytest": "python3-pytest", "catkin_pkg": "python3-catkin-pkg-modules",
    "rosbags": PIP + "rosbags", "pyrender": PIP + "pyrender", "onnx": PIP + "onnx",
    "tokenizers": PIP + "tokenizers", "huggingface_hub": PIP + "huggingface_hub", "safetensors": PIP + "safetensors",
    "ray": PIP + "ray", "datasets": PIP + "datasets", "pyarrow": PIP + "pyarrow", "pandas": PIP + "pandas",
    "peft": PIP + "peft",
}
#: ROS packages imported under their own name (the package name is the rosdep key)
ROS_PACKAGES = frozenset({
    "rclpy", "rcl_interfaces", "lifecycle_msgs", "builtin_interfaces", "std_msgs", "std_srvs", "sensor_msgs",
    "visualization_msgs", "diagnostic_msgs", "vision_msgs", "spatial_vlm_interfaces", "ament_index_python",
    "launch", "launch_ros", "geometry_msgs", "tf2_ros", "tf2_msgs", "moveit_msgs", "shape_msgs",
})


# ------------------------------------------------------------------------------------------------ checks
def license_id(path: Path) -> str:
    """SPDX id of a licence file (only the Apache License 2.0 is recognised)."""
    text = path.read_text(encoding="utf-8")
    return "Apache-2.0" if "Apache License" in text and "Version 2.0, January 2004" in text else "unknown"


def setup_keyword(name: str) -> str:
    """A literal keyword argument of the ``setup()`` call in setup.py (``version``, ``license``)."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == name:
            return ast.literal_eval(node.value)
    raise LookupError(f"setup.py has no '{name}' keyword")


def package_problems(path: Path, version: str, spdx: str) -> list[str]:
    """What is wrong with one package.xml: catkin_pkg's errors (malformed XML, a missing name, version,
    description, maintainer e-mail or licence, ...) and warnings, a format other than 3, a licence other
    than ``spdx``, a version other than ``version``."""
    warnings: list[str] = []
    try:
        package = parse_package(path, warnings=warnings)
    except InvalidPackage as exc:
        return [f"{path.name}: {exc}"]
    problems = [f"{path.name}: {w}" for w in warnings]
    if package.package_format != 3:
        problems.append(f"{path.name}: format {package.package_format}, not 3")
    if [str(lic) for lic in package.licenses] != [spdx]:
        problems.append(f"{path.name}: licence {package.licenses} is not the LICENSE file's {spdx}")
    if package.version != version:
        problems.append(f"{path.name}: version {package.version} is not setup.py's {version}")
    return problems


def imported_modules(folder: Path, local: frozenset[str] = frozenset()) -> set[str]:
    """Top-level names of the absolute imports in the .py files under ``folder`` (lazy and guarded ones
    included), less the standard library, this package and ``local`` (the folder's own helper modules).

    Read line by line, not parsed (parsing the whole tree is slow): an import is a statement on a line of
    its own, as the code style has it, so a line of prose that is exactly an import statement counts too."""
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names.update(_FROM.findall(text))
        for group in _IMPORT.findall(text):
            names.update(part.split()[0].split(".")[0] for part in group.split(","))
    return names - set(sys.stdlib_module_names) - {"spatial_vlm_ros"} - local


def rosdep_key(module: str) -> str | None:
    return module if module in ROS_PACKAGES else MODULE_KEYS.get(module)


def _distribution(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()          # PEP 503 normalised


def pinned_distributions() -> set[str]:
    """Distributions named in the requirements files."""
    names = set()
    for path in REQUIREMENTS:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#", 1)[0])
            if match:
                names.add(_distribution(match.group(1)))
    return names


def xml_comments(path: Path) -> str:
    """The text of every comment in an XML file, joined."""
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    return " ".join(c.text or "" for c in ET.parse(path, parser).getroot().iter(ET.Comment))


def undeclared(modules: set[str], declared: set[str], xml_path: Path, tag: str) -> list[str]:
    """Imported modules without a dependency: a rosdep key missing from ``declared``, a pip-only module not
    pinned in a requirements file or not named in a comment of ``xml_path``, a module with no known key."""
    comments, pinned = xml_comments(xml_path), pinned_distributions()
    problems = []
    for module in sorted(modules):
        key = rosdep_key(module)
        if key is None:
            problems.append(f"'{module}' is imported: declare its rosdep key in package.xml and add it to "
                            "MODULE_KEYS (or ROS_PACKAGES) in this test")
        elif key.startswith(PIP):
            dist = key[len(PIP):]
            if _distribution(dist) not in pinned:
                problems.append(f"'{module}': {dist} is not pinned in requirements.txt or requirements-nodeps.txt")
            if not re.search(rf"\b{re.escape(dist)}\b", comments):
                problems.append(f"'{module}': no comment in {xml_path.name} names {dist} (no rosdep key)")
        elif key not in declared:
            problems.append(f"'{module}' is imported: {xml_path.name} needs <{tag}>{key}</{tag}>")
    return problems


def _names(deps) -> set[str]:
    return {d.name for d in deps}


def _runtime_modules() -> set[str]:
    return imported_modules(ROOT / "spatial_vlm_ros") | imported_modules(ROOT / "launch")


def _test_modules() -> set[str]:
    test = ROOT / "test"
    return imported_modules(test, local=frozenset(p.stem for p in test.rglob("*.py")))


# ------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("path", [PACKAGE_XML, INTERFACES / "package.xml"], ids=["spatial_vlm_ros", "interfaces"])
def test_package_xml_follows_format_3_with_the_repository_licence_and_version(path):
    assert license_id(ROOT / "LICENSE") == setup_keyword("license")
    assert package_problems(path, setup_keyword("version"), setup_keyword("license")) == []


def test_every_runtime_and_test_import_is_a_declared_dependency():
    package = parse_package(PACKAGE_XML)
    runtime, tests = _runtime_modules(), _test_modules()
    exec_deps = _names(package.exec_depends)
    problems = undeclared(runtime, exec_deps, PACKAGE_XML, "exec_depend")
    problems += undeclared(tests - runtime, exec_deps | _names(package.test_depends), PACKAGE_XML, "test_depend")
    assert problems == []


def test_no_python_dependency_is_declared_that_nothing_imports():
    package = parse_package(PACKAGE_XML)
    used = {rosdep_key(m) for m in _runtime_modules() | _test_modules()}
    declared = _names(package.exec_depends) | _names(package.test_depends)
    assert {k for k in declared if k.startswith("python3-")} - used == set()


def test_interfaces_depend_on_every_package_their_fields_use():
    pattern = re.compile(r"^\s*([a-z][a-z0-9_]*)/[A-Z]\w*", re.MULTILINE)
    used = set()
    for path in [*INTERFACES.glob("msg/*.msg"), *INTERFACES.glob("srv/*.srv")]:
        used.update(pattern.findall(path.read_text(encoding="utf-8")))
    package = parse_package(INTERFACES / "package.xml")
    assert used and used - (_names(package.build_depends) & _names(package.exec_depends)) == set()


@pytest.mark.filterwarnings("ignore:nodes.Node.traverse:DeprecationWarning")   # catkin_pkg on new docutils
def test_changelog_newest_section_is_the_package_version():
    changelog = get_changelog_from_path(ROOT / "CHANGELOG.rst", "spatial_vlm_ros")
    version, _date, _content = next(iter(changelog.foreach_version()))
    assert version == parse_package(PACKAGE_XML).version


# ---------------------------------------------------------------------- the checks catch broken copies
def _broken_copy(tmp_path: Path, pattern: str, replacement: str) -> Path:
    text = PACKAGE_XML.read_text(encoding="utf-8")
    broken, n = re.subn(pattern, replacement, text, count=1)
    assert n == 1, f"{pattern!r} not in package.xml"
    path = tmp_path / "package.xml"
    path.write_text(broken, encoding="utf-8")
    return path


@pytest.mark.parametrize("pattern,replacement,needle", [
    ("</package>", "", "invalid XML"),
    ('format="3"', 'format="2"', "not 3"),
    ("<license>[^<]*</license>", "<license>MIT</license>", "licence"),
    (' email="[^"]*"', "", "email"),
    ("<version>[^<]*</version>", "<version>9.9.9</version>", "version"),
    ("<name>[^<]*</name>", "", "name"),
])
def test_a_broken_package_xml_is_reported(tmp_path, pattern, replacement, needle):
    broken = _broken_copy(tmp_path, pattern, replacement)
    problems = package_problems(broken, setup_keyword("version"), setup_keyword("license"))
    assert len(problems) == 1 and needle in problems[0], problems


@pytest.mark.parametrize("pattern,module", [
    (r"<exec_depend>python3-open3d-pip</exec_depend>", "open3d"),    # a rosdep key left out
    (r"\brosbags\b", "rosbags"),                                     # a pip-only module not named
])
def test_a_missing_dependency_is_reported(tmp_path, pattern, module):
    broken = _broken_copy(tmp_path, pattern, "")
    declared = _names(parse_package(broken).exec_depends)
    problems = undeclared(_runtime_modules(), declared, broken, "exec_depend")
    assert len(problems) == 1 and f"'{module}'" in problems[0], problems


def test_an_unknown_import_is_reported(tmp_path):
    (tmp_path / "uses_it.py").write_text("def f():\n    import not_a_known_module\n", encoding="utf-8")
    problems = undeclared(imported_modules(tmp_path), set(), PACKAGE_XML, "exec_depend")
    assert len(problems) == 1 and "not_a_known_module" in problems[0]


# ------------------------------------------------------------- xmllint-style: every package.xml, its schema
FORMAT_3_SCHEMA = "http://download.ros.org/schema/package_format3.xsd"
_NOT_SOURCES = {"build", "install", "log", "out"}               # colcon's and the tools' output folders


def all_package_xmls(root: Path = ROOT) -> set[Path]:
    """Every package.xml under ``root``, less hidden folders (.venv, .git) and build output."""
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (folder == str(root) and d in _NOT_SOURCES)]
        if "package.xml" in files:
            found.add(Path(folder) / "package.xml")
    return found


def schema_problems(path: Path) -> list[str]:
    """What ``xmllint --schema`` (ament_xmllint) would miss or refuse before validating: an XML declaration
    other than version 1.0, or no ``<?xml-model?>`` instruction naming the format-3 XML Schema."""
    text = path.read_text(encoding="utf-8")
    problems = []
    if not re.match(r'<\?xml version="1\.0"(\s+encoding="(?i:utf-8)")?\s*\?>', text):
        problems.append(f"{path.name}: does not start with <?xml version=\"1.0\"?>")
    models = re.findall(r"<\?xml-model\s+([^?]*)\?>", text)
    schema = [m for m in models if f'href="{FORMAT_3_SCHEMA}"' in m
              and 'schematypens="http://www.w3.org/2001/XMLSchema"' in m]
    if not schema:
        problems.append(f"{path.name}: no <?xml-model href=\"{FORMAT_3_SCHEMA}\" "
                        "schematypens=\"http://www.w3.org/2001/XMLSchema\"?>")
    return problems


def test_every_package_xml_in_the_repository_is_checked():
    assert all_package_xmls() == {PACKAGE_XML, INTERFACES / "package.xml"}


@pytest.mark.parametrize("path", [PACKAGE_XML, INTERFACES / "package.xml"], ids=["spatial_vlm_ros", "interfaces"])
def test_package_xml_names_the_format_3_schema(path):
    assert schema_problems(path) == []


@pytest.mark.parametrize("pattern,replacement,needle", [
    ("package_format3.xsd", "package_format2.xsd", "xml-model"),
    (r'<\?xml version="1.0"\?>', '<?xml version="1.1"?>', "1.0"),
])
def test_a_package_xml_with_another_schema_is_reported(tmp_path, pattern, replacement, needle):
    problems = schema_problems(_broken_copy(tmp_path, pattern, replacement))
    assert len(problems) == 1 and needle in problems[0], problems


def test_a_package_xml_anywhere_is_found(tmp_path):
    (tmp_path / "sub" / "pkg").mkdir(parents=True)
    (tmp_path / "sub" / "pkg" / "package.xml").write_text("<package/>", encoding="utf-8")
    (tmp_path / ".venv" / "x").mkdir(parents=True)
    (tmp_path / ".venv" / "x" / "package.xml").write_text("<package/>", encoding="utf-8")
    assert all_package_xmls(tmp_path) == {tmp_path / "sub" / "pkg" / "package.xml"}
