"""Home Agent: the UDP data plane of RFC 6618 §6 on port 7872."""
