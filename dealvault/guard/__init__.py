"""``ape run guard``: a keeper that watches deals and acts before a cap or a crisis binds (issue 15)."""
