"""The driving conventions every core and codec keeps (docs/architecture.md, "Conventions")."""

import importlib
import inspect
import io
import pkgutil
import re
import tokenize
from pathlib import Path

import pytest

from aaa_mip6.actions import Action
from aaa_mip6.diameter import peer
from aaa_mip6.diameter.peer import PeerConnection
from aaa_mip6.diameter.router import Router
from aaa_mip6.lke.ar import ArCore
from aaa_mip6.lke.mn import MnCore
from ha.admission import LookupAdmission
from ha.core import HomeAgentCore
from mn.mobility import MobilityMachine
from mn.rebootstrap import RebootstrapPolicy

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ("ha", "hac", "mn")
CORES = (HomeAgentCore, LookupAdmission, MobilityMachine, RebootstrapPolicy, PeerConnection,
         Router, ArCore, MnCore)
CODECS = (
    "aaa_mip6.container", "aaa_mip6.tvheaders", "aaa_mip6.messages", "aaa_mip6.eap",
    "aaa_mip6.simaka", "aaa_mip6.transform", "aaa_mip6.mobility.messages",
    "aaa_mip6.mobility.payloads", "aaa_mip6.radius.codec", "aaa_mip6.diameter.codec",
    "aaa_mip6.diameter.eap", "aaa_mip6.diameter.sa_app", "aaa_mip6.lke.messages",
    "aaa_mip6.lke.nd", "aaa_mip6.lke.crypto", "aaa_mip6.lke.lbsa",
)
# Verbs of other codec vocabularies; a codec here says encode/decode.
OTHER_CODEC_VERBS = re.compile(r"(parse|build|pack|unpack|serialize|deserialize|to_bytes|"
                               r"from_bytes|format|marshal|dump)(_|$)")
PROTOCOL_NUMBERS = {7872, 3868, 5658, 1812}  # ports named in aaa_mip6/iana.py, and only there


def _program_modules(program: str):
    package = importlib.import_module(program)
    for info in pkgutil.walk_packages(package.__path__, f"{program}."):
        yield importlib.import_module(info.name)


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_programs_actions_live_in_its_actions_module_with_the_common_base(program):
    actions = importlib.import_module(f"{program}.actions")
    defined = [obj for obj in vars(actions).values()
               if inspect.isclass(obj) and obj.__module__ == actions.__name__]
    assert defined and all(issubclass(cls, Action) for cls in defined)
    elsewhere = [f"{module.__name__}.{name}" for module in _program_modules(program)
                 if module is not actions for name, obj in vars(module).items()
                 if inspect.isclass(obj) and obj.__module__ == module.__name__
                 and issubclass(obj, Action)]
    assert elsewhere == []


def test_the_diameter_peers_events_have_the_common_base():
    events = [peer.PeerOpened, peer.RequestReceived, peer.AnswerReceived,
              peer.AnswerUndecodable, peer.PeerSuspect, peer.PeerClosed]
    assert all(issubclass(event, Action) for event in events)


@pytest.mark.parametrize("core", CORES, ids=lambda core: core.__name__)
def test_now_is_the_last_positional_argument_of_every_core_input(core):
    for name, method in inspect.getmembers(core, inspect.isfunction):
        parameters = inspect.signature(method).parameters
        if name.startswith("_") or "now" not in parameters:
            continue
        positional = [p.name for p in parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        assert positional[-1] == "now", f"{core.__name__}.{name}{inspect.signature(method)}"


@pytest.mark.parametrize("core", CORES, ids=lambda core: core.__name__)
def test_one_timer_api(core):
    assert not hasattr(core, "tick") and not hasattr(core, "deadline")
    if hasattr(core, "handle_timer"):
        assert list(inspect.signature(core.handle_timer).parameters) == ["self", "now"]
    if hasattr(core, "timer"):
        assert inspect.isfunction(core.timer)  # a method, called as timer()


@pytest.mark.parametrize("name", CODECS)
def test_codecs_say_encode_and_decode(name):
    module = importlib.import_module(name)
    public = [(n, obj) for n, obj in vars(module).items() if not n.startswith("_")
              and getattr(obj, "__module__", None) == name]
    names = [n for n, obj in public if inspect.isfunction(obj)]
    names += [f"{n}.{m}" for n, obj in public if inspect.isclass(obj)
              for m, member in vars(obj).items() if not m.startswith("_") and callable(member)]
    assert [n for n in names if OTHER_CODEC_VERBS.match(n.rpartition(".")[2])] == []


def _code_outside_iana():
    for path in sorted(ROOT.glob("*/**/*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in ("tests", "docs") or relative.parts[0].startswith("."):
            continue
        if relative != Path("aaa_mip6/iana.py"):
            yield relative, path.read_text()


def test_protocol_numbers_are_named_once():
    found = []
    for relative, source in _code_outside_iana():
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        found += [f"{relative}:{token.start[0]}" for token in tokens
                  if token.type == tokenize.NUMBER and token.string.isdigit()
                  and int(token.string) in PROTOCOL_NUMBERS]
    assert found == []


def test_next_header_values_are_named_in_iana_only():
    found = [f"{relative}: {match.group(0)}" for relative, source in _code_outside_iana()
             for match in re.finditer(r"^\s*(NEXT_HEADER|IPPROTO)_\w+ *= *\d+", source, re.M)]
    assert found == []
