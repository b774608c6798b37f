"""Everything about Label Studio itself: its REST API (``client``) and its label configs (``config``).

``client`` imports Label Studio's SDK, which takes over a second: import it where it is used.
"""
