"""Tabular data for CTGAN-style models: schema, mode-specific normalisation, condition sampling.

schema = infer_schema(df)                              # kinds, id, bounds, missingness
transformer = TableTransformer.fit(df, schema)         # one variational GMM per numeric column
data = transformer.transform(df, key=0)                # float32 [N, transformer.layout.dim]
sampler = ConditionSampler.from_data(transformer.layout, data)
batch = sampler.sample_condvec(500, np.random.default_rng(0))  # cond, mask, real rows
table = transformer.inverse_transform(generated, ids=True)
"""

from jaxsyn.data.tabular.mixture import Mixture, MixtureConfig
from jaxsyn.data.tabular.sampler import CondBatch, ConditionSampler, condition_vector
from jaxsyn.data.tabular.schema import KINDS, ColumnSchema, TableSchema, infer_schema
from jaxsyn.data.tabular.transformer import Layout, Span, TableTransformer, TransformerConfig

__all__ = [
    "KINDS",
    "ColumnSchema",
    "CondBatch",
    "ConditionSampler",
    "Layout",
    "Mixture",
    "MixtureConfig",
    "Span",
    "TableSchema",
    "TableTransformer",
    "TransformerConfig",
    "condition_vector",
    "infer_schema",
]
