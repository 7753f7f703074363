"""Interface discovery (pyroute2 netlink + sysfs) into pure Device records, watched via netlink
events (coalesced, rate limited, with a max poll interval); operator CEL filter compiled at
start.
"""
