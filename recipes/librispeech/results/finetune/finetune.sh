#!/bin/bash
# fine-tune lever comparison (issue 30): shipped model, 6 passes at speed 1.0, clean vs + 1 corrupted copy
set -e
common=(--set init_from=asr/assets/model.pt --set 'speed_perturb=[1.0]' --set lr=5e-4 --set warmup_steps=50
        --set final_lr_ratio=0.1 --set average_last=0 --set dev_every=1 --set max_minutes=60)
aug=(--set augment.copies=1 --set augment.room=0.3 --set augment.noise=0.6 --set augment.telephone=0.1
     --set augment.opus=0.1 --set augment.gain=0.2 --set augment.clipping=0.05)
/usr/bin/time -v .venv/bin/asr train recipes/librispeech/conf/train-clean-5.toml "${common[@]}" "${aug[@]}" \
  --set epochs=3 --set out_dir=exp/ft/aug --quiet > exp/ft/aug.log 2>&1
/usr/bin/time -v .venv/bin/asr train recipes/librispeech/conf/train-clean-5.toml "${common[@]}" \
  --set epochs=6 --set out_dir=exp/ft/clean --quiet > exp/ft/clean.log 2>&1
