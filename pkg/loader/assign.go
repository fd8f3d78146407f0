package loader

import (
	"fmt"
	"reflect"

	"github.com/cilium/ebpf"
)

// Assign fills to, a pointer to a bpf2go-generated struct of loaded
// objects (xxxMaps, xxxPrograms, xxxVariables, or xxxObjects that embeds
// them), from o by each field's `ebpf:"name"` tag, so that a tool uses its
// maps and variables by field (m.Hists) rather than by string. Unlike
// ebpf.Collection.Assign it leaves the objects owned by o: Close frees
// them, and Health still reads them. It is an error if a tagged object is
// not loaded (a program left out because this kernel lacks its hook, or a
// map the tool removed from the spec): assign those structs only when
// they are whole.
func (o *Objects) Assign(to any) error { return AssignCollection(o.Collection, to) }

// AssignCollection is Objects.Assign for a bare collection (pkg/xdp's,
// loaded or opened from pins): the objects stay owned by coll.
func AssignCollection(coll *ebpf.Collection, to any) error {
	v := reflect.ValueOf(to)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("assign BPF objects to %T: want a pointer to a struct", to)
	}
	return assign(coll, v.Elem())
}

func assign(coll *ebpf.Collection, s reflect.Value) error {
	for i := range s.NumField() {
		f, field := s.Type().Field(i), s.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if err := assign(coll, field); err != nil {
				return err
			}
			continue
		}
		name, ok := f.Tag.Lookup("ebpf")
		if !ok {
			continue
		}
		var obj any
		var found bool
		switch field.Interface().(type) {
		case *ebpf.Map:
			obj, found = coll.Maps[name]
		case *ebpf.Program:
			obj, found = coll.Programs[name]
		case *ebpf.Variable:
			obj, found = coll.Variables[name]
		default:
			return fmt.Errorf("assign BPF objects: field %s has type %s", f.Name, f.Type)
		}
		if !found {
			return fmt.Errorf("assign BPF objects: %s %q is not loaded", f.Type.Elem().Name(), name)
		}
		field.Set(reflect.ValueOf(obj))
	}
	return nil
}
