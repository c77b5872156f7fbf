"""elscli: analytic score machines (Kamb & Ganguli, ICML 2025) on the CPU.

Public API (lazily imported so that ``import elscli`` and ``elscli --help`` stay fast):

- :class:`Bank` — a training set as a patch bank (``Bank.from_arrays``, ``Bank.open``);
- :func:`denoise`, :func:`score` — the IS / LS / ELS / bbELS machines;
- :func:`sample`, :class:`Run` — the reverse process and its run files;
- :mod:`elscli.reference` — reference trajectories of trained networks.
"""
__version__ = "0.1.0"

_LAZY = {
    "Bank": ("elscli.bank", "Bank"),
    "denoise": ("elscli.machines", "denoise"),
    "score": ("elscli.machines", "score"),
    "denoise_with_provenance": ("elscli.machines", "denoise_with_provenance"),
    "Provenance": ("elscli.machines", "Provenance"),
    "MACHINES": ("elscli.machines", "MACHINES"),
    "sample": ("elscli.runs", "sample"),
    "Run": ("elscli.runs", "Run"),
    "ElscliError": ("elscli.errors", "ElscliError"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name == "reference":
        import importlib

        return importlib.import_module("elscli.reference")
    raise AttributeError(f"module 'elscli' has no attribute {name!r}")
