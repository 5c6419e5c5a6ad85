"""Every line a fit writes to metrics.jsonl is exactly what the standard ``json`` encoder writes
for the values on it (NOTE [line templates] in loggers/jsonl.py), with many loaders too."""

from __future__ import annotations

import json

from .fit_helpers import make_config, make_loader, make_trainer

_REFERENCE = json.JSONEncoder(separators=(",", ":"))


def test_each_line_of_a_fit_with_many_loaders_is_the_standard_encoding(tmp_path):
    names = [f"l{i}" for i in range(6)]
    cfg = make_config(
        tmp_path,
        loader={"dataloader_names": names},
        log_loss_every_n_steps=4,
        logging={"log_scalars_every_n_steps": 4},
    )
    trainer = make_trainer(cfg)
    trainer.fit([make_loader(8, seed) for seed in range(6)], [make_loader(8, 9)], max_epochs=2)
    lines = (tmp_path / "t" / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    assert len(lines) > 4
    for line in lines:
        record = json.loads(line)
        assert (_REFERENCE.encode(record) + "\n").encode("utf-8") == line
    profiled = [record for record in map(json.loads, lines) if "train/dl_l5/loss" in record]
    assert profiled and all("profile/train/dl_l5/time_data_ms" in r for r in profiled)
