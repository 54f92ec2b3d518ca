"""Training and evaluation of captioners, kept apart from the indexing path (as open_clip keeps
open_clip_train): the loop, recipe, SCST, data sets, metrics, comparisons."""
