"""What a traced program shows of remat: shared by the remat tests of every family."""

from __future__ import annotations

import jax
import jax.extend

from jaxsyn.nn import remat as remat_lib


def policies(fn, *args, jaxpr=None) -> list[str]:
    """The remat policies of `fn`'s traced program (or of `jaxpr`), in program order (nested
    ones too)."""
    names = {n: remat_lib.policy(n) for n in remat_lib.POLICIES if n != "none"}
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name.startswith("remat"):
                found.append(next(n for n, p in names.items() if p == eqn.params["policy"]))
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jaxpr or jax.make_jaxpr(fn)(*args).jaxpr)
    return found
