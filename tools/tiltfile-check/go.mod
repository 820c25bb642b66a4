module flatline.dev/tools/tiltfile-check

go 1.22

require (
	go.starlark.net v0.0.0-20240510163022-f457c4c2b267
	go.yaml.in/yaml/v3 v3.0.4
)

require golang.org/x/sys v0.0.0-20220715151400-c0bba94af5f8 // indirect
