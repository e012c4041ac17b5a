"""What the tests share: receivers, fakes, builders, kube helpers, real-service fixtures.

Test modules import from here and never from each other (tests/unit/test_layout.py)."""
