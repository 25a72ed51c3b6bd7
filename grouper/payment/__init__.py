"""Paying for grouped cases: the payment pack, DRG settlement (``payment.drg``) and DIP
(``payment.dip``); the two are independent of each other."""
