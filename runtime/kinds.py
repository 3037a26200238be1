"""The model kinds and what each implies; shared by the training config (svg_core.config) and the
manifest's ModelSpec. Part of the runtime's base layer (docs/design.md): every package may import it."""

from __future__ import annotations


class ModelKind:
    """What a model kind implies (lp: learned prior, fp: fixed N(0, I) prior, det: no latent)."""

    kind: str
    action_dim: int
    action_prior: bool

    @property
    def has_latent(self) -> bool:
        return self.kind != "det"

    @property
    def has_prior(self) -> bool:
        return self.kind == "lp"

    @property
    def has_actions(self) -> bool:
        return self.action_dim > 0

    @property
    def prior_takes_action(self) -> bool:
        """The learned prior's input is [h, a] (LP with actions and action_prior)."""
        return self.has_prior and self.has_actions and self.action_prior
