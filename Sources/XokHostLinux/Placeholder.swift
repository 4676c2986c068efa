import XN
