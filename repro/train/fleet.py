"""Fleets: several runs of one network trained together in one process, each still its own run.

A 13k-parameter FSRCNN cannot fill a GPU however fast one step is; the tables need many such runs (every
seed, every ablation student, every equal-compute control). Runs whose objectives have the same
structure and the same patch shapes and length (`fleet_key`) are trained as one stacked model
(`repro.train.stacked`): one forward, backward and optimizer step for all members, the objective's
forward under `torch.func.vmap` (about the operations of one run's step, whatever the fleet's size).

Each member is exactly its solo run but for float reassociation in the batched kernels:
- built as its solo run builds it (its seed, its teacher's weights), so it starts from the same weights;
- its own patches: the fleet's batch is every member's batch of that iteration, each drawn with its own
  seed (`PatchSampler.params(..., seeds=...)`);
- its own learning rate and schedule (`StackedAdam`: Adam's update per member), loss weights and
  supervised levels (the objective computes the terms any member needs; a member's total weighs only its
  own, as its solo loss does), and a student its own frozen teacher (teachers of one architecture are
  stacked too; others run one after another);
- its own run folder, written as a solo run writes it (config, metrics.csv with its own columns,
  checkpoint.pt in a solo run's format, model.pt, done.json), so `repro train` finds a member finished
  and a solo run's checkpoint resumes in a fleet and the other way round.

A member whose loss turns non-finite stops there, as its solo run would: nothing of that window is
written for it (its folder keeps its last checkpoint), the error names its run, and the other members
go on (its slice of the stacked tensors is independent of theirs). `train_fleet` returns each member's
folder or error; the caller reports them.
"""
