"""The HTTP face of the emulator, split the way kube-apiserver is: routing (`routing`), authentication
(`auth`), fault injection (`faults`), the request handlers (`handlers`, `patching`), watch (`watch`) and the
wire formats (`wire`). The object rules they apply live in `sandbox.kube.objects`; `sandbox.kube.server`
puts the pieces together as the `Emulator`.
"""
