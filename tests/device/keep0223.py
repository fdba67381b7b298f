# StoredSession._keep as library 0.2.23 had it (no older RAM-only messages written first):
# the device scripts that build a store as 0.2.23 wrote it set StoredSession._keep to this
# (dev_store_overlap_upgrade.py, dev_store_cut_shapes.py)
from mqttsession.stored import append

_DISK = 32  # session.py's flags
_PID = 64
_PIDDISK = 128
_REL = 16


def keep_0223(self, k):
    f = self.fl[k]
    if f & _REL:
        self._release(k, f)
        return
    if f & _DISK:
        return
    append(self, self.seq[k], f & 7, self.ids[k] if f & _PID else 0, self.epoch,
           self.top[k], self.msg[k])
    if k == self.cap:
        if not self.more:
            self._cur = self.seq[k]
        self.more += 1
        self.fl[k] = 0
        self.top[k] = self.msg[k] = None
    else:
        self.fl[k] = f | _DISK | (_PIDDISK if f & _PID else 0)
