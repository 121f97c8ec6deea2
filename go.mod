module github.com/mmapwal/wal

go 1.24

require (
	github.com/edsrzf/mmap-go v1.2.0
	golang.org/x/sys v0.30.0
)

require (
	github.com/stretchr/testify v1.12.1
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
