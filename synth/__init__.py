"""synth: turn observed Kubernetes traffic into least-privilege NetworkPolicies."""

__version__ = "0.1.0"
