"""Rewrites of a training graph after autodiff, one job each: they change where tensors live
(flash or SRAM, which bytes they share), never what the graph computes."""
