import AgentAPI
import CLibbpf
import Foundation
import Glibc
import XCTest

@testable import DatapathCore

/// `KernelBTF` finds kernel struct fields as libbpf does, without holding the kernel's BTF, and the objects that read
/// kernel structs load against the small BTF it writes.
final class KernelBTFTests: XCTestCase {
    override func setUpWithError() throws {
        guard FileManager.default.isReadableFile(atPath: KernelBTF.vmlinux) else {
            throw XCTSkip("this kernel exposes no BTF at \(KernelBTF.vmlinux)")
        }
    }

    /// The streamed layout of a few structs equals what libbpf finds in the whole kernel BTF.
    func testTheStreamedLayoutIsLibbpfs() throws {
        let uses = [
            KernelStructUse("tcp_sock", fields: ["write_seq": 4, "snd_nxt": 4, "rcv_nxt": 4]),
            KernelStructUse("sk_buff", fields: ["len": 4, "data_len": 4, "truesize": 4]),
            KernelStructUse("sock_common", fields: ["skc_family": 2, "skc_state": 1]),
        ]
        let layouts = try KernelBTF.layouts(of: uses)
        XCTAssertEqual(layouts.map(\.name), ["tcp_sock", "sk_buff", "sock_common"])

        let whole = try XCTUnwrap(btf__load_vmlinux_btf(), "libbpf could not load the kernel BTF")
        defer { btf__free(whole) }
        for (use, layout) in zip(uses, layouts) {
            let id = btf__find_by_name_kind(whole, use.name, UInt32(BTF_KIND_STRUCT))
            XCTAssertGreaterThan(id, 0, use.name)
            let type = try XCTUnwrap(btf__type_by_id(whole, UInt32(id)))
            XCTAssertEqual(layout.size, type.pointee.size, use.name)
            var expected: [KernelStructLayout.Field] = []
            let members = btf_members(type)!
            for index in 0..<Int(btf_vlen(type)) {
                let member = members[index]
                let name = String(cString: btf__name_by_offset(whole, member.name_off))
                guard use.fields[name] != nil else { continue }
                let bits = btf_member_bit_offset(type, UInt32(index))
                expected.append(
                    .init(name: name, offset: bits / 8, size: Int(btf__resolve_size(whole, member.type))))
            }
            XCTAssertEqual(layout.fields, expected.sorted { $0.offset < $1.offset }, use.name)
            XCTAssertEqual(layout.fields.count, use.fields.count, use.name)
        }
    }

    func testWhatTheKernelLacksIsNamed() throws {
        for (use, words) in [
            (KernelStructUse("na_no_such_struct", fields: ["x": 4]), "struct na_no_such_struct"),
            (KernelStructUse("tcp_sock", fields: ["na_no_such_field": 4]), "tcp_sock.na_no_such_field"),
            (
                KernelStructUse("tcp_sock", fields: ["write_seq": 8]),
                "tcp_sock.write_seq is 4 bytes, the program reads 8"
            ),
        ] {
            XCTAssertThrowsError(try KernelBTF.layouts(of: [use])) { error in
                XCTAssertTrue("\(error)".contains(words), "\(error)")
            }
        }
        XCTAssertThrowsError(
            try KernelBTF.layouts(of: [KernelStructUse("tcp_sock", fields: [:])], path: "/nonexistent")
        ) { error in XCTAssertEqual((error as? AgentError)?.status, 503, "\(error)") }
    }

    /// A BTF with a type of every kind before and after the wanted struct: each is stepped over by its own length, a
    /// field's size is found through typedefs and qualifiers, and a bit field is refused.
    func testEveryKindIsSteppedOver() throws {
        let btf = try XCTUnwrap(btf__new_empty())
        defer { btf__free(btf) }
        let u32 = btf__add_int(btf, "unsigned int", 4, 0)
        let u16 = btf__add_int(btf, "unsigned short", 2, 0)
        let enumeration = btf__add_enum(btf, "colour", 4)
        XCTAssertEqual(btf__add_enum_value(btf, "red", 1), 0)
        XCTAssertEqual(btf__add_enum_value(btf, "blue", 2), 0)
        let wide = btf__add_enum64(btf, "wide", 8, false)
        XCTAssertEqual(btf__add_enum64_value(btf, "huge", 1 << 40), 0)
        let typedef = btf__add_typedef(btf, "u32_t", u32)
        let constant = btf__add_const(btf, typedef)
        let volatile = btf__add_volatile(btf, constant)
        let pointer = btf__add_ptr(btf, u32)
        let array = btf__add_array(btf, u32, u32, 3)
        let proto = btf__add_func_proto(btf, u32)
        XCTAssertEqual(btf__add_func_param(btf, "a", u32), 0)
        XCTAssertEqual(btf__add_func_param(btf, "b", u16), 0)
        let function = btf__add_func(btf, "f", BTF_FUNC_GLOBAL, proto)
        XCTAssertGreaterThan(btf__add_fwd(btf, "later", BTF_FWD_STRUCT), 0)
        XCTAssertGreaterThan(btf__add_float(btf, "double", 8), 0)
        XCTAssertGreaterThan(btf__add_type_tag(btf, "tag", u32), 0)
        XCTAssertGreaterThan(btf__add_decl_tag(btf, "tag", function, -1), 0)
        let union = btf__add_union(btf, "either", 4)
        XCTAssertEqual(btf__add_field(btf, "write_seq", u16, 0, 0), 0)  // a union's member of the same name
        let variable = btf__add_var(btf, "v", Int32(BTF_VAR_GLOBAL_ALLOCATED), u32)
        XCTAssertGreaterThan(btf__add_datasec(btf, ".data", 4), 0)
        XCTAssertEqual(btf__add_datasec_var_info(btf, variable, 0, 4), 0)
        XCTAssertGreaterThan(btf__add_struct(btf, "na_wanted", 64), 0)
        for (name, type, bits) in [
            ("colour", enumeration, 0), ("pointer", pointer, 64), ("values", array, 128), ("either", union, 224),
            ("wide", wide, 256), ("write_seq", volatile, 320), ("tail", u16, 352),
        ] {
            XCTAssertEqual(btf__add_field(btf, name, type, UInt32(bits), 0), 0, name)
        }
        XCTAssertGreaterThan(btf__add_struct(btf, "na_bits", 4), 0)
        XCTAssertEqual(btf__add_field(btf, "low", u32, 0, 3), 0)
        XCTAssertEqual(btf__add_field(btf, "high", u32, 3, 29), 0)
        XCTAssertGreaterThan(btf__add_struct(btf, "na_after", 4), 0)
        XCTAssertEqual(btf__add_field(btf, "x", u32, 0, 0), 0)
        var size: UInt32 = 0
        let raw = try XCTUnwrap(btf__raw_data(btf, &size))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("na-btf-\(getpid())").path
        defer { unlink(path) }
        try Data(bytes: raw, count: Int(size)).write(to: URL(fileURLWithPath: path))

        let layouts = try KernelBTF.layouts(
            of: [
                KernelStructUse(
                    "na_wanted", fields: ["colour": 4, "pointer": 8, "wide": 8, "write_seq": 4, "tail": 2]),
                KernelStructUse("na_after", fields: ["x": 4]),
            ], path: path)
        XCTAssertEqual(
            layouts[0],
            KernelStructLayout(
                name: "na_wanted", size: 64,
                fields: [
                    .init(name: "colour", offset: 0, size: 4), .init(name: "pointer", offset: 8, size: 8),
                    .init(name: "wide", offset: 32, size: 8), .init(name: "write_seq", offset: 40, size: 4),
                    .init(name: "tail", offset: 44, size: 2),
                ]))
        XCTAssertEqual(
            layouts[1], KernelStructLayout(name: "na_after", size: 4, fields: [.init(name: "x", offset: 0, size: 4)]))
        // An array's size is not followed: reading one whole is not what a program's field read does.
        XCTAssertThrowsError(
            try KernelBTF.layouts(of: [KernelStructUse("na_wanted", fields: ["values": 12])], path: path))
        XCTAssertThrowsError(try KernelBTF.layouts(of: [KernelStructUse("na_bits", fields: ["high": 4])], path: path)) {
            XCTAssertTrue("\($0)".contains("na_bits.high is a bit field"), "\($0)")
        }
    }

    /// The HTTP object, the one that reads a kernel struct, loads against the small BTF: libbpf never reads the
    /// kernel's own (what libbpf says when it does is caught here, as the second half shows).
    func testTheHTTPObjectLoadsWithoutTheKernelsWholeBTF() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
        XCTAssertEqual(BPFObject.kernelStructs["l7"], [KernelStructUse("tcp_sock", fields: ["write_seq": 4])])
        let (object, messages) = try LibbpfLog.holding { try BPFObject.load(embedded: "l7", pinDirectory: nil) }
        XCTAssertNotNil(object.program(named: "na_l7_verdict"))
        XCTAssertFalse(messages.isEmpty)
        XCTAssertFalse(messages.contains { $0.contains("loading kernel BTF") }, "\(messages)")

        let (whole, wholeMessages) = LibbpfLog.holding { btf__load_vmlinux_btf() }
        btf__free(whole)
        XCTAssertTrue(wholeMessages.contains { $0.contains("loading kernel BTF") }, "\(wholeMessages)")
    }

    /// The small BTF holds the struct with its fields where the kernel has them, and nothing else.
    func testTheTargetHoldsTheLayoutsAlone() throws {
        let layouts = try KernelBTF.layouts(of: [KernelStructUse("tcp_sock", fields: ["write_seq": 4, "snd_nxt": 4])])
        let bytes = try KernelBTF.target(layouts)
        let btf = try XCTUnwrap(bytes.withUnsafeBytes { btf__new($0.baseAddress, UInt32($0.count)) })
        defer { btf__free(btf) }
        XCTAssertEqual(btf__type_cnt(btf), 3)  // void, one integer, the struct
        let id = btf__find_by_name_kind(btf, "tcp_sock", UInt32(BTF_KIND_STRUCT))
        let type = try XCTUnwrap(btf__type_by_id(btf, UInt32(id)))
        XCTAssertEqual(type.pointee.size, layouts[0].size)
        let members = btf_members(type)!
        XCTAssertEqual(
            (0..<Int(btf_vlen(type))).map {
                KernelStructLayout.Field(
                    name: String(cString: btf__name_by_offset(btf, members[$0].name_off)),
                    offset: members[$0].offset / 8, size: Int(btf__resolve_size(btf, members[$0].type)))
            }, layouts[0].fields)
    }
}
