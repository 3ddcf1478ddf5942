"""Training GliDe drafts (``svip.training.glide``): ``train_draft`` distils one, teacher-forced (``make glide-draft``)."""
