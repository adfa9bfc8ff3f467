"""Which weights inside a layer are pruned: magnitude (data-free), Wanda and SparseGPT (calibrated).

The allocation (`--method`) fixes how many weights each layer loses; a criterion chooses which,
and SparseGPT also updates the weights it keeps. `--pattern N:M` constrains every criterion to
at most N kept weights in every group of M consecutive input weights.
"""

CRITERIA = ("magnitude", "wanda", "sparsegpt")
CALIBRATED = ("wanda", "sparsegpt")
