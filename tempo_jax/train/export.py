"""The trained models as Hugging Face checkpoints at the end of a run."""

from __future__ import annotations

from flax import nnx

from tempo_jax import storage
from tempo_jax.models.hf_io import to_hf
from tempo_jax.models.tokenizer import save_tokenizer
from tempo_jax.parallel.distributed import barrier, is_primary
from tempo_jax.parallel.mesh import to_host


def export_final(trainer) -> None:
    """The trained actor (and critic) as HF checkpoints, with the tokenizer, under run_dir/export;
    their generation_config.json holds the stop and pad ids the run sampled with.

    Every process must call it: parameters sharded over several processes are gathered with
    ``to_host`` (an all-gather, i.e. a collective), then only the primary writes."""
    base = storage.join(trainer.run_dir, "export")
    settings = trainer.settings
    roles = [("actor", trainer.actor)] + ([("critic", trainer.critic)] if trainer.critic is not None else [])
    for name, role in roles:
        params = to_host(role.state.params)  # one role at a time: a single host copy of a model at the peak
        if is_primary():
            to_hf(  # generation_config.json gets the ids the rollouts used
                nnx.merge(role.graphdef, params),
                storage.join(base, name),
                stop_ids=settings.stop_ids,
                pad_id=settings.pad_id,
            )
        del params
    if is_primary():
        save_tokenizer(trainer.tokenizer, storage.join(base, "actor"))  # run_dir/tokenizer: written at start
    barrier("tempo_jax_export_final")  # nobody leaves (and shuts the job down) before the files are written
