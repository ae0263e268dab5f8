"""`--config.FIELD=VALUE`: VALUE is read as the field's annotated type, every kind, and a bad
value is a one-line error naming the field and the expected type."""

import dataclasses

import pytest

from jaxsyn.cli import main
from jaxsyn.cli.common import override
from jaxsyn.errors import ConfigError


@dataclasses.dataclass(frozen=True, kw_only=True)
class Inner:
    size: int = 32
    rate: float = 1e-4


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    model: Inner = dataclasses.field(default_factory=Inner)
    flag: bool = False
    name: str = "a"
    column: str | None = "bmi_class"
    weights: tuple[float, ...] | None = None
    betas: tuple[float, float] = (0.0, 0.999)
    names: tuple[str, ...] = ()
    steps: int = 5


@pytest.mark.parametrize(
    "assignment, field, value",
    [
        ("flag=true", "flag", True),
        ("flag=0", "flag", False),
        ("name=b", "name", "b"),
        ("column=none", "column", None),
        ("column=age", "column", "age"),
        ("weights=1,0.5,2", "weights", (1.0, 0.5, 2.0)),  # a None default: read as its annotation
        ("weights=123", "weights", (123.0,)),
        ("weights=none", "weights", None),
        ("betas=0.5,0.9", "betas", (0.5, 0.9)),
        ("names=a,b", "names", ("a", "b")),
        ("names=", "names", ()),
        ("steps=7", "steps", 7),
    ],
)
def test_each_kind_is_read_as_its_annotation(assignment, field, value):
    got = getattr(override(Config(), assignment), field)
    assert got == value and type(got) is type(value)


def test_model_fields_first_and_dotted_paths():
    assert override(Config(), "size=64").model.size == 64  # the model's field
    assert override(Config(), "model.rate=0.5").model.rate == 0.5
    assert isinstance(override(Config(), "model.rate=1").model.rate, float)


@pytest.mark.parametrize(
    "assignment, words",
    [
        ("steps=1.5", "--config.steps=1.5: expected an integer (now 5)"),
        ("flag=yes", "--config.flag=yes: expected true or false"),
        ("weights=1,x", "expected comma-separated numbers or none"),
        ("betas=0.5", "expected 2 comma-separated values (a number, a number)"),
        ("model=3", "--config.model=3: expected fields set one by one"),
        ("nothing=1", "--config.nothing: no such field"),
        ("flag.x=1", "'flag' is not a nested config field"),
        ("model.sise=64", "--config.model.sise: no such field"),  # the whole dotted name
        ("model.size=x", "--config.model.size=x: expected an integer"),
    ],
)
def test_bad_values_name_the_field_and_the_type(assignment, words):
    with pytest.raises(ConfigError) as error:
        override(Config(), assignment)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_through_the_command(tmp_path, capsys):
    """A real config (AC-GAN's class_weights defaults to None) through `jaxsyn train`."""
    argv = ["train", "acgan", "--tiny", "--data", "phantom:vertebra:8", "--out", str(tmp_path)]
    assert main([*argv, "--steps", "1", "--config.class_weights=1,x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--config.class_weights=1,x: expected comma-separated" in err
