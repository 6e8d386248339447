"""HTTP/1.x for a passive observer: ``parser`` (the state table), ``side`` (one
direction's state and body framing), ``syntax`` (head parsing, resync scan),
``heads`` (what a head does to its side), ``messages`` (the events), ``pairing``
(requests to responses)."""
