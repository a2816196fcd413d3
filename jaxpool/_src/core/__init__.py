"""Shared machinery of every operator family; no operator lives here.

* `.checks`: argument checks (bools, choices, numbers, keys);
* `.dtypes`: dtype rules (half precision computed in float32);
* `.geometry`: window arguments -> `WindowGeometry`;
* `.taps`: strided tap views, padding-free blocks;
* `.scatter`: the phase-layout backward scatter;
* `.reductions`: window sums and extrema with their fast derivatives;
* `.sorting`: order statistics by a sorting network (median pooling);
* `.banded`: stride-2 two-band maps and their transposes (the fixed
  wavelets of LiftPool);
* `.sharding`: reshapes and random draws that keep the input's sharding.
"""
