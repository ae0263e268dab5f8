"""Shared, session-scoped phantom table and fitted transformer (the fit compiles once)."""

import pandas as pd
import pytest

from jaxsyn.data.phantoms.ct import clinical_table
from jaxsyn.data.tabular import TableTransformer


@pytest.fixture(scope="session")
def phantom() -> pd.DataFrame:
    return clinical_table(2000, seed=3)


@pytest.fixture(scope="session")
def fitted(phantom) -> TableTransformer:
    return TableTransformer.fit(phantom, progress=False)


@pytest.fixture(scope="session")
def encoded(fitted, phantom):
    return fitted.transform(phantom, 0, progress=False)
