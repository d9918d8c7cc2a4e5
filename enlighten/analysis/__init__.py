"""Analysis: results read back from run directories, paired statistics, and the claims report.

`runs` and `stats` import no torch, so tables stay quick; all of it works offline on copied results.
- `runs`: loading summary.json files, the identity that pairs runs, refusing duplicates.
- `stats`: paired tests, slopes, Holm's correction and the minimum detectable effect (scipy.stats).
- `claims`: the paper's four claims tested on the claims sweeps, and the report (docs/claims.md).
"""
