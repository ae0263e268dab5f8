"""Tabular data for CTGAN-style models: schema, mode-specific normalisation, condition sampling.

schema = infer_schema(df)                              # kinds, id, bounds, missingness
transformer = TableTransformer.fit(df, schema)         # one variational GMM per numeric column
data = transformer.transform(df, key=0)                # float32 [N, transformer.layout.dim]
sampler = ConditionSampler.from_data(transformer.layout, data)
batch = sampler.sample_condvec(500, key=0)                  # cond, mask, real rows (JAX)
table = transformer.inverse_transform(generated, ids=True)
"""

from jaxsyn.data.tabular.mixture import Mixture, MixtureConfig
from jaxsyn.data.tabular.sampler import (
    CondBatch,
    ConditionSampler,
    SamplerArrays,
    condition_vector,
    draw,
)
from jaxsyn.data.tabular.schema import KINDS, ColumnSchema, TableSchema, infer_schema
from jaxsyn.data.tabular.transformer import (
    DecodeIndex,
    Layout,
    Span,
    TableTransformer,
    TransformerConfig,
    choice_parts,
    decode_parts,
)

__all__ = [
    "DecodeIndex",
    "choice_parts",
    "decode_parts",
    "KINDS",
    "ColumnSchema",
    "CondBatch",
    "ConditionSampler",
    "Layout",
    "Mixture",
    "SamplerArrays",
    "MixtureConfig",
    "Span",
    "TableSchema",
    "TableTransformer",
    "TransformerConfig",
    "condition_vector",
    "draw",
    "infer_schema",
]
