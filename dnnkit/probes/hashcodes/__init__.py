"""`hash-codes`: ReLU activation patterns as binary hash codes (He, Lei, Ji, Tao, 2021)."""
