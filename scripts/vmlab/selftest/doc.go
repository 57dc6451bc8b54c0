// Package selftest holds the kernel lab's own tests: run inside the guest
// (make vmtest) they prove that the guest has IPVS, module autoloading,
// network namespaces with veth, and the host's programs; run on the host
// they prove that scripts/vmlab/run passes output, exit status and the
// lab's own failures back.
package selftest
