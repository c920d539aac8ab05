"""Pure parsers: raw tool output in, data out. They never open files, sockets or processes.

``nvidia_smi`` and ``npu_smi`` read the accelerator tools, ``facts`` the host sections of the probe,
``common`` holds ``AcceleratorReading``, ``ParseError`` and the value helpers they share.
"""
