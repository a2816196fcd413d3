"""Shared machinery of every operator family; no operator lives here.

* :mod:`.checks`: argument checks (bools, choices, numbers, keys);
* :mod:`.dtypes`: dtype rules (half precision computed in float32);
* :mod:`.geometry`: window arguments -> :class:`~.geometry.WindowGeometry`;
* :mod:`.taps`: strided tap views, padding-free blocks;
* :mod:`.scatter`: the phase-layout backward scatter;
* :mod:`.reductions`: window sums and extrema with their fast derivatives;
* :mod:`.sorting`: order statistics by a sorting network (median pooling);
* :mod:`.banded`: stride-2 two-band maps and their transposes (the fixed
  wavelets of LiftPool);
* :mod:`.sharding`: reshapes and random draws that keep the input's sharding.
"""
