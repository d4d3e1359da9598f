"""setup.cfg ships every package and the RADIUS dictionaries, without setuptools warnings."""

from pathlib import Path

from setuptools.config.setupcfg import read_configuration

from aaa_mip6.radius.codec import DICTIONARY_DIR

REPO = Path(__file__).resolve().parents[2]


def test_the_radius_dictionaries_are_a_package_with_its_data():
    # With `find:` the dictionaries' directory was no package: setuptools shipped the
    # files as aaa_mip6.radius's data and warned that it would soon ignore them.
    options = read_configuration(REPO / "setup.cfg")["options"]
    assert "aaa_mip6.radius.dicts" in options["packages"]
    assert not [name for name in options["packages"] if "__pycache__" in name]
    patterns = options["package_data"]["aaa_mip6.radius.dicts"]
    shipped = {path.name for pattern in patterns for path in DICTIONARY_DIR.glob(pattern)}
    assert shipped == {path.name for path in DICTIONARY_DIR.iterdir()} and "dictionary" in shipped
