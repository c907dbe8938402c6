"""Training path: batched encoding equals the pipeline's, a few steps lower the loss, runs resume."""

import csv
import random

import pytest
import torch

from model.nano.build import build_nano_pipeline
from model.nano.data import export_world, read_metadata
from model.nano.grammar import training_instruction
from model.nano.train import (
    TrainConfig,
    TripletBatcher,
    encode_batch,
    flow_loss,
    pipeline_from_checkpoint,
    prompt_ids,
    train,
    warm_start,
)
from model.nano.world import make_triplet


@pytest.fixture(scope="module")
def pipe(tiny_config):
    torch.set_num_threads(1)
    return build_nano_pipeline(tiny_config, seed=0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("nano-data")
    export_world(out, 8, seed=3, progress=False)
    return out / "metadata.json"


def test_batched_encoding_matches_pipeline(pipe):
    triplets = [make_triplet(4, i, zh_fraction=z) for i, z in enumerate([0.0, 1.0, 0.0])]
    ids = [prompt_ids(pipe, t.source, t.instruction) for t in triplets]
    embeds, mask = encode_batch(pipe, ids, [t.source for t in triplets])
    for row, t in enumerate(triplets):
        ref_embeds, ref_mask = pipe.encode_prompt(t.source, [t.instruction])
        assert torch.equal(mask[row], ref_mask[0])
        torch.testing.assert_close(embeds[row], ref_embeds[0], atol=1e-5, rtol=1e-4)


def test_few_steps_lower_the_loss(pipe, dataset):
    batcher = TripletBatcher(pipe, read_metadata(dataset))
    indices = list(range(len(batcher)))
    params = [p for m in (pipe.text_encoder, pipe.connector, pipe.transformer) for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3)

    def fixed_loss():
        torch.manual_seed(0)
        with torch.no_grad():
            return flow_loss(pipe, *batcher.batch(indices), torch.ones(len(indices))).item()

    before = fixed_loss()
    for _ in range(12):
        loss = flow_loss(pipe, *batcher.batch(indices), torch.ones(len(indices)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert fixed_loss() < 0.8 * before


def test_training_resumes_from_checkpoint(dataset, tmp_path, tiny_config):
    config = TrainConfig(steps=3, batch_size=4, checkpoint_every=2, model=tiny_config)
    train(dataset, tmp_path, config, progress=False)
    config.steps = 5
    pipe = train(dataset, tmp_path, config, progress=False)
    with open(tmp_path / "loss.csv", encoding="utf-8") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == [1, 2, 3, 4, 5]
    assert (tmp_path / "loss.png").stat().st_size > 0
    assert pipe.name == "step1x-edit-nano"
    # The checkpoint's EMA weights are what training returned.
    again = pipeline_from_checkpoint(tmp_path / "checkpoint.pt")
    for name in ("text_encoder", "connector", "transformer"):
        ours, theirs = getattr(pipe, name).state_dict(), getattr(again, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_changed_weight_counts_edited_pixels_more(pipe, dataset):
    batcher = TripletBatcher(pipe, read_metadata(dataset))
    src, tgt, embeds, mask = batcher.batch(list(range(len(batcher))))
    t = torch.ones(len(src))

    def loss(source, target, weight):
        torch.manual_seed(0)
        with torch.no_grad():
            return flow_loss(pipe, source, target, embeds, mask, t, weight).item()

    plain = loss(src, tgt, 0.0)
    # The untrained model stays near the source, so its error sits on the edited pixels.
    assert loss(src, tgt, 4.0) > 1.5 * plain
    # With nothing edited there is nothing to weight: the weighted loss is the plain MSE.
    assert loss(src, src, 4.0) == pytest.approx(loss(src, src, 0.0), rel=1e-6)


def test_category_weights_set_the_draw_weights(pipe, dataset):
    batcher = TripletBatcher(pipe, read_metadata(dataset))
    assert batcher.sampling_weights({}) is None
    weights = batcher.sampling_weights({batcher.categories[0]: 3.0})
    assert weights == [3.0 if c == batcher.categories[0] else 1.0 for c in batcher.categories]
    assert all(batcher.categories)  # every generated triplet names its category


def test_fresh_phrasings_tokenise_like_the_pipeline(pipe, dataset):
    batcher = TripletBatcher(pipe, read_metadata(dataset), TrainConfig())
    rng = random.Random(0)
    for category, edit in zip(batcher.categories, batcher.edits, strict=True):
        for _ in range(5):
            text, _ = training_instruction(category, edit, rng)
            assert batcher.prompt(text) == prompt_ids(pipe, batcher.probe, text), text


def test_rephrasing_draws_new_instructions(pipe, dataset):
    random.seed(0)
    rephrasing = TripletBatcher(pipe, read_metadata(dataset), TrainConfig())
    fixed = TripletBatcher(pipe, read_metadata(dataset), TrainConfig(rephrase=False))
    assert len({tuple(rephrasing._ids(0)) for _ in range(20)}) > 5
    assert {tuple(fixed._ids(0)) for _ in range(5)} == {
        tuple(prompt_ids(pipe, fixed.probe, fixed.captions[0]))
    }


def test_warm_start_copies_matching_tensors(tmp_path, tiny_config):
    old = build_nano_pipeline(tiny_config, seed=1)
    with torch.no_grad():
        old.transformer.proj_out.weight.fill_(0.25)
        embed = old.text_encoder.get_input_embeddings().weight
        embed[old.processor.tokenizer.convert_tokens_to_ids("Ġcircle")] = 7.0
    old.save_pretrained(tmp_path / "old")
    new = build_nano_pipeline(tiny_config, seed=2)
    counts = warm_start(new, tmp_path / "old")
    assert counts["skipped"] == 0 and counts["token_rows"] > 500
    assert torch.all(new.transformer.proj_out.weight == 0.25)
    row = new.processor.tokenizer.convert_tokens_to_ids("Ġcircle")
    assert torch.all(new.text_encoder.get_input_embeddings().weight[row] == 7.0)
