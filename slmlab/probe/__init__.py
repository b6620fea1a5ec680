"""Looking inside models: activation capture during generation, probes with controls, interventions.

    from slmlab.probe import load_activations
    X, samples = load_activations("slmlab-runs/slmlab.db", "eval-...", layer=12)

Names are imported lazily: capture needs torch, probes need scikit-learn, storage needs neither.
"""

from typing import TYPE_CHECKING

from slmlab.lazy import lazy_exports

_EXPORTS = {
    "ProbeFindings": "slmlab.probe.findings",
    "load_activations": "slmlab.probe.findings",
    "probe_run": "slmlab.probe.findings",
}

if TYPE_CHECKING:
    from slmlab.probe.findings import ProbeFindings, load_activations, probe_run

__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(_EXPORTS)
