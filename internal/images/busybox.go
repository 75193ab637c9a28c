package images

import "io/fs"

// Busybox describes a small image of a static busybox binary and links for
// the given applets, with root and nobody users and a writable /tmp: the
// local image the tests and the benchmark run, since no registry is reachable.
func Busybox(name string, busybox []byte, applets ...string) Spec {
	files := []File{{Path: "/bin/busybox", Mode: 0o755, Data: busybox}}
	for _, a := range applets {
		files = append(files, File{Path: "/bin/" + a, Mode: fs.ModeSymlink | 0o777, Linkname: "busybox"})
	}
	files = append(files,
		File{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		File{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnobody:x:65534:\n")},
		File{Path: "/tmp", Mode: fs.ModeDir | 0o777},
	)
	return Spec{Name: name, Files: files, Cmd: []string{"/bin/sh"}}
}
