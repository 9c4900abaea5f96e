namespace SharpBpf.Platform;

/// <summary>
/// Helper function ids, numbered as the kernel's uapi numbers them (enum bpf_func_id in linux/bpf.h). The names are
/// the kernel's without the bpf_ prefix, in .NET casing. Prototypes live in the platform table.
/// </summary>
public enum HelperId
{
    /// <summary>bpf_unspec</summary>
    Unspecified = 0,
    /// <summary>bpf_map_lookup_elem</summary>
    MapLookupElem = 1,
    /// <summary>bpf_map_update_elem</summary>
    MapUpdateElem = 2,
    /// <summary>bpf_map_delete_elem</summary>
    MapDeleteElem = 3,
    /// <summary>bpf_probe_read</summary>
    ProbeRead = 4,
    /// <summary>bpf_ktime_get_ns</summary>
    KtimeGetNs = 5,
    /// <summary>bpf_trace_printk</summary>
    TracePrintk = 6,
    /// <summary>bpf_get_prandom_u32</summary>
    GetPrandomU32 = 7,
    /// <summary>bpf_get_smp_processor_id</summary>
    GetSmpProcessorId = 8,
    /// <summary>bpf_skb_store_bytes</summary>
    SkbStoreBytes = 9,
    /// <summary>bpf_l3_csum_replace</summary>
    L3CsumReplace = 10,
    /// <summary>bpf_l4_csum_replace</summary>
    L4CsumReplace = 11,
    /// <summary>bpf_tail_call</summary>
    TailCall = 12,
    /// <summary>bpf_clone_redirect</summary>
    CloneRedirect = 13,
    /// <summary>bpf_get_current_pid_tgid</summary>
    GetCurrentPidTgid = 14,
    /// <summary>bpf_get_current_uid_gid</summary>
    GetCurrentUidGid = 15,
    /// <summary>bpf_get_current_comm</summary>
    GetCurrentComm = 16,
    /// <summary>bpf_get_cgroup_classid</summary>
    GetCgroupClassid = 17,
    /// <summary>bpf_skb_vlan_push</summary>
    SkbVlanPush = 18,
    /// <summary>bpf_skb_vlan_pop</summary>
    SkbVlanPop = 19,
    /// <summary>bpf_skb_get_tunnel_key</summary>
    SkbGetTunnelKey = 20,
    /// <summary>bpf_skb_set_tunnel_key</summary>
    SkbSetTunnelKey = 21,
    /// <summary>bpf_perf_event_read</summary>
    PerfEventRead = 22,
    /// <summary>bpf_redirect</summary>
    Redirect = 23,
    /// <summary>bpf_get_route_realm</summary>
    GetRouteRealm = 24,
    /// <summary>bpf_perf_event_output</summary>
    PerfEventOutput = 25,
    /// <summary>bpf_skb_load_bytes</summary>
    SkbLoadBytes = 26,
    /// <summary>bpf_get_stackid</summary>
    GetStackid = 27,
    /// <summary>bpf_csum_diff</summary>
    CsumDiff = 28,
    /// <summary>bpf_skb_get_tunnel_opt</summary>
    SkbGetTunnelOpt = 29,
    /// <summary>bpf_skb_set_tunnel_opt</summary>
    SkbSetTunnelOpt = 30,
    /// <summary>bpf_skb_change_proto</summary>
    SkbChangeProto = 31,
    /// <summary>bpf_skb_change_type</summary>
    SkbChangeType = 32,
    /// <summary>bpf_skb_under_cgroup</summary>
    SkbUnderCgroup = 33,
    /// <summary>bpf_get_hash_recalc</summary>
    GetHashRecalc = 34,
    /// <summary>bpf_get_current_task</summary>
    GetCurrentTask = 35,
    /// <summary>bpf_probe_write_user</summary>
    ProbeWriteUser = 36,
    /// <summary>bpf_current_task_under_cgroup</summary>
    CurrentTaskUnderCgroup = 37,
    /// <summary>bpf_skb_change_tail</summary>
    SkbChangeTail = 38,
    /// <summary>bpf_skb_pull_data</summary>
    SkbPullData = 39,
    /// <summary>bpf_csum_update</summary>
    CsumUpdate = 40,
    /// <summary>bpf_set_hash_invalid</summary>
    SetHashInvalid = 41,
    /// <summary>bpf_get_numa_node_id</summary>
    GetNumaNodeId = 42,
    /// <summary>bpf_skb_change_head</summary>
    SkbChangeHead = 43,
    /// <summary>bpf_xdp_adjust_head</summary>
    XdpAdjustHead = 44,
    /// <summary>bpf_probe_read_str</summary>
    ProbeReadStr = 45,
    /// <summary>bpf_get_socket_cookie</summary>
    GetSocketCookie = 46,
    /// <summary>bpf_get_socket_uid</summary>
    GetSocketUid = 47,
    /// <summary>bpf_set_hash</summary>
    SetHash = 48,
    /// <summary>bpf_setsockopt</summary>
    Setsockopt = 49,
    /// <summary>bpf_skb_adjust_room</summary>
    SkbAdjustRoom = 50,
    /// <summary>bpf_redirect_map</summary>
    RedirectMap = 51,
    /// <summary>bpf_sk_redirect_map</summary>
    SkRedirectMap = 52,
    /// <summary>bpf_sock_map_update</summary>
    SockMapUpdate = 53,
    /// <summary>bpf_xdp_adjust_meta</summary>
    XdpAdjustMeta = 54,
    /// <summary>bpf_perf_event_read_value</summary>
    PerfEventReadValue = 55,
    /// <summary>bpf_perf_prog_read_value</summary>
    PerfProgReadValue = 56,
    /// <summary>bpf_getsockopt</summary>
    Getsockopt = 57,
    /// <summary>bpf_override_return</summary>
    OverrideReturn = 58,
    /// <summary>bpf_sock_ops_cb_flags_set</summary>
    SockOpsCbFlagsSet = 59,
    /// <summary>bpf_msg_redirect_map</summary>
    MsgRedirectMap = 60,
    /// <summary>bpf_msg_apply_bytes</summary>
    MsgApplyBytes = 61,
    /// <summary>bpf_msg_cork_bytes</summary>
    MsgCorkBytes = 62,
    /// <summary>bpf_msg_pull_data</summary>
    MsgPullData = 63,
    /// <summary>bpf_bind</summary>
    Bind = 64,
    /// <summary>bpf_xdp_adjust_tail</summary>
    XdpAdjustTail = 65,
    /// <summary>bpf_skb_get_xfrm_state</summary>
    SkbGetXfrmState = 66,
    /// <summary>bpf_get_stack</summary>
    GetStack = 67,
    /// <summary>bpf_skb_load_bytes_relative</summary>
    SkbLoadBytesRelative = 68,
    /// <summary>bpf_fib_lookup</summary>
    FibLookup = 69,
    /// <summary>bpf_sock_hash_update</summary>
    SockHashUpdate = 70,
    /// <summary>bpf_msg_redirect_hash</summary>
    MsgRedirectHash = 71,
    /// <summary>bpf_sk_redirect_hash</summary>
    SkRedirectHash = 72,
    /// <summary>bpf_lwt_push_encap</summary>
    LwtPushEncap = 73,
    /// <summary>bpf_lwt_seg6_store_bytes</summary>
    LwtSeg6StoreBytes = 74,
    /// <summary>bpf_lwt_seg6_adjust_srh</summary>
    LwtSeg6AdjustSrh = 75,
    /// <summary>bpf_lwt_seg6_action</summary>
    LwtSeg6Action = 76,
    /// <summary>bpf_rc_repeat</summary>
    RcRepeat = 77,
    /// <summary>bpf_rc_keydown</summary>
    RcKeydown = 78,
    /// <summary>bpf_skb_cgroup_id</summary>
    SkbCgroupId = 79,
    /// <summary>bpf_get_current_cgroup_id</summary>
    GetCurrentCgroupId = 80,
    /// <summary>bpf_get_local_storage</summary>
    GetLocalStorage = 81,
    /// <summary>bpf_sk_select_reuseport</summary>
    SkSelectReuseport = 82,
    /// <summary>bpf_skb_ancestor_cgroup_id</summary>
    SkbAncestorCgroupId = 83,
    /// <summary>bpf_sk_lookup_tcp</summary>
    SkLookupTcp = 84,
    /// <summary>bpf_sk_lookup_udp</summary>
    SkLookupUdp = 85,
    /// <summary>bpf_sk_release</summary>
    SkRelease = 86,
    /// <summary>bpf_map_push_elem</summary>
    MapPushElem = 87,
    /// <summary>bpf_map_pop_elem</summary>
    MapPopElem = 88,
    /// <summary>bpf_map_peek_elem</summary>
    MapPeekElem = 89,
    /// <summary>bpf_msg_push_data</summary>
    MsgPushData = 90,
    /// <summary>bpf_msg_pop_data</summary>
    MsgPopData = 91,
    /// <summary>bpf_rc_pointer_rel</summary>
    RcPointerRel = 92,
    /// <summary>bpf_spin_lock</summary>
    SpinLock = 93,
    /// <summary>bpf_spin_unlock</summary>
    SpinUnlock = 94,
    /// <summary>bpf_sk_fullsock</summary>
    SkFullsock = 95,
    /// <summary>bpf_tcp_sock</summary>
    TcpSock = 96,
    /// <summary>bpf_skb_ecn_set_ce</summary>
    SkbEcnSetCe = 97,
    /// <summary>bpf_get_listener_sock</summary>
    GetListenerSock = 98,
    /// <summary>bpf_skc_lookup_tcp</summary>
    SkcLookupTcp = 99,
    /// <summary>bpf_tcp_check_syncookie</summary>
    TcpCheckSyncookie = 100,
    /// <summary>bpf_sysctl_get_name</summary>
    SysctlGetName = 101,
    /// <summary>bpf_sysctl_get_current_value</summary>
    SysctlGetCurrentValue = 102,
    /// <summary>bpf_sysctl_get_new_value</summary>
    SysctlGetNewValue = 103,
    /// <summary>bpf_sysctl_set_new_value</summary>
    SysctlSetNewValue = 104,
    /// <summary>bpf_strtol</summary>
    Strtol = 105,
    /// <summary>bpf_strtoul</summary>
    Strtoul = 106,
    /// <summary>bpf_sk_storage_get</summary>
    SkStorageGet = 107,
    /// <summary>bpf_sk_storage_delete</summary>
    SkStorageDelete = 108,
    /// <summary>bpf_send_signal</summary>
    SendSignal = 109,
    /// <summary>bpf_tcp_gen_syncookie</summary>
    TcpGenSyncookie = 110,
    /// <summary>bpf_skb_output</summary>
    SkbOutput = 111,
    /// <summary>bpf_probe_read_user</summary>
    ProbeReadUser = 112,
    /// <summary>bpf_probe_read_kernel</summary>
    ProbeReadKernel = 113,
    /// <summary>bpf_probe_read_user_str</summary>
    ProbeReadUserStr = 114,
    /// <summary>bpf_probe_read_kernel_str</summary>
    ProbeReadKernelStr = 115,
    /// <summary>bpf_tcp_send_ack</summary>
    TcpSendAck = 116,
    /// <summary>bpf_send_signal_thread</summary>
    SendSignalThread = 117,
    /// <summary>bpf_jiffies64</summary>
    Jiffies64 = 118,
    /// <summary>bpf_read_branch_records</summary>
    ReadBranchRecords = 119,
    /// <summary>bpf_get_ns_current_pid_tgid</summary>
    GetNsCurrentPidTgid = 120,
    /// <summary>bpf_xdp_output</summary>
    XdpOutput = 121,
    /// <summary>bpf_get_netns_cookie</summary>
    GetNetnsCookie = 122,
    /// <summary>bpf_get_current_ancestor_cgroup_id</summary>
    GetCurrentAncestorCgroupId = 123,
    /// <summary>bpf_sk_assign</summary>
    SkAssign = 124,
    /// <summary>bpf_ktime_get_boot_ns</summary>
    KtimeGetBootNs = 125,
    /// <summary>bpf_seq_printf</summary>
    SeqPrintf = 126,
    /// <summary>bpf_seq_write</summary>
    SeqWrite = 127,
    /// <summary>bpf_sk_cgroup_id</summary>
    SkCgroupId = 128,
    /// <summary>bpf_sk_ancestor_cgroup_id</summary>
    SkAncestorCgroupId = 129,
    /// <summary>bpf_ringbuf_output</summary>
    RingbufOutput = 130,
    /// <summary>bpf_ringbuf_reserve</summary>
    RingbufReserve = 131,
    /// <summary>bpf_ringbuf_submit</summary>
    RingbufSubmit = 132,
    /// <summary>bpf_ringbuf_discard</summary>
    RingbufDiscard = 133,
    /// <summary>bpf_ringbuf_query</summary>
    RingbufQuery = 134,
    /// <summary>bpf_csum_level</summary>
    CsumLevel = 135,
    /// <summary>bpf_skc_to_tcp6_sock</summary>
    SkcToTcp6Sock = 136,
    /// <summary>bpf_skc_to_tcp_sock</summary>
    SkcToTcpSock = 137,
    /// <summary>bpf_skc_to_tcp_timewait_sock</summary>
    SkcToTcpTimewaitSock = 138,
    /// <summary>bpf_skc_to_tcp_request_sock</summary>
    SkcToTcpRequestSock = 139,
    /// <summary>bpf_skc_to_udp6_sock</summary>
    SkcToUdp6Sock = 140,
    /// <summary>bpf_get_task_stack</summary>
    GetTaskStack = 141,
    /// <summary>bpf_load_hdr_opt</summary>
    LoadHdrOpt = 142,
    /// <summary>bpf_store_hdr_opt</summary>
    StoreHdrOpt = 143,
    /// <summary>bpf_reserve_hdr_opt</summary>
    ReserveHdrOpt = 144,
    /// <summary>bpf_inode_storage_get</summary>
    InodeStorageGet = 145,
    /// <summary>bpf_inode_storage_delete</summary>
    InodeStorageDelete = 146,
    /// <summary>bpf_d_path</summary>
    DPath = 147,
    /// <summary>bpf_copy_from_user</summary>
    CopyFromUser = 148,
    /// <summary>bpf_snprintf_btf</summary>
    SnprintfBtf = 149,
    /// <summary>bpf_seq_printf_btf</summary>
    SeqPrintfBtf = 150,
    /// <summary>bpf_skb_cgroup_classid</summary>
    SkbCgroupClassid = 151,
    /// <summary>bpf_redirect_neigh</summary>
    RedirectNeigh = 152,
    /// <summary>bpf_per_cpu_ptr</summary>
    PerCpuPtr = 153,
    /// <summary>bpf_this_cpu_ptr</summary>
    ThisCpuPtr = 154,
    /// <summary>bpf_redirect_peer</summary>
    RedirectPeer = 155,
    /// <summary>bpf_task_storage_get</summary>
    TaskStorageGet = 156,
    /// <summary>bpf_task_storage_delete</summary>
    TaskStorageDelete = 157,
    /// <summary>bpf_get_current_task_btf</summary>
    GetCurrentTaskBtf = 158,
    /// <summary>bpf_bprm_opts_set</summary>
    BprmOptsSet = 159,
    /// <summary>bpf_ktime_get_coarse_ns</summary>
    KtimeGetCoarseNs = 160,
    /// <summary>bpf_ima_inode_hash</summary>
    ImaInodeHash = 161,
    /// <summary>bpf_sock_from_file</summary>
    SockFromFile = 162,
    /// <summary>bpf_check_mtu</summary>
    CheckMtu = 163,
    /// <summary>bpf_for_each_map_elem</summary>
    ForEachMapElem = 164,
    /// <summary>bpf_snprintf</summary>
    Snprintf = 165,
    /// <summary>bpf_sys_bpf</summary>
    SysBpf = 166,
    /// <summary>bpf_btf_find_by_name_kind</summary>
    BtfFindByNameKind = 167,
    /// <summary>bpf_sys_close</summary>
    SysClose = 168,
    /// <summary>bpf_timer_init</summary>
    TimerInit = 169,
    /// <summary>bpf_timer_set_callback</summary>
    TimerSetCallback = 170,
    /// <summary>bpf_timer_start</summary>
    TimerStart = 171,
    /// <summary>bpf_timer_cancel</summary>
    TimerCancel = 172,
    /// <summary>bpf_get_func_ip</summary>
    GetFuncIp = 173,
    /// <summary>bpf_get_attach_cookie</summary>
    GetAttachCookie = 174,
    /// <summary>bpf_task_pt_regs</summary>
    TaskPtRegs = 175,
    /// <summary>bpf_get_branch_snapshot</summary>
    GetBranchSnapshot = 176,
    /// <summary>bpf_trace_vprintk</summary>
    TraceVprintk = 177,
    /// <summary>bpf_skc_to_unix_sock</summary>
    SkcToUnixSock = 178,
    /// <summary>bpf_kallsyms_lookup_name</summary>
    KallsymsLookupName = 179,
    /// <summary>bpf_find_vma</summary>
    FindVma = 180,
    /// <summary>bpf_loop</summary>
    Loop = 181,
    /// <summary>bpf_strncmp</summary>
    Strncmp = 182,
    /// <summary>bpf_get_func_arg</summary>
    GetFuncArg = 183,
    /// <summary>bpf_get_func_ret</summary>
    GetFuncRet = 184,
    /// <summary>bpf_get_func_arg_cnt</summary>
    GetFuncArgCnt = 185,
    /// <summary>bpf_get_retval</summary>
    GetRetval = 186,
    /// <summary>bpf_set_retval</summary>
    SetRetval = 187,
    /// <summary>bpf_xdp_get_buff_len</summary>
    XdpGetBuffLen = 188,
    /// <summary>bpf_xdp_load_bytes</summary>
    XdpLoadBytes = 189,
    /// <summary>bpf_xdp_store_bytes</summary>
    XdpStoreBytes = 190,
    /// <summary>bpf_copy_from_user_task</summary>
    CopyFromUserTask = 191,
    /// <summary>bpf_skb_set_tstamp</summary>
    SkbSetTstamp = 192,
    /// <summary>bpf_ima_file_hash</summary>
    ImaFileHash = 193,
    /// <summary>bpf_kptr_xchg</summary>
    KptrXchg = 194,
    /// <summary>bpf_map_lookup_percpu_elem</summary>
    MapLookupPercpuElem = 195,
    /// <summary>bpf_skc_to_mptcp_sock</summary>
    SkcToMptcpSock = 196,
    /// <summary>bpf_dynptr_from_mem</summary>
    DynptrFromMem = 197,
    /// <summary>bpf_ringbuf_reserve_dynptr</summary>
    RingbufReserveDynptr = 198,
    /// <summary>bpf_ringbuf_submit_dynptr</summary>
    RingbufSubmitDynptr = 199,
    /// <summary>bpf_ringbuf_discard_dynptr</summary>
    RingbufDiscardDynptr = 200,
    /// <summary>bpf_dynptr_read</summary>
    DynptrRead = 201,
    /// <summary>bpf_dynptr_write</summary>
    DynptrWrite = 202,
    /// <summary>bpf_dynptr_data</summary>
    DynptrData = 203,
    /// <summary>bpf_tcp_raw_gen_syncookie_ipv4</summary>
    TcpRawGenSyncookieIpv4 = 204,
    /// <summary>bpf_tcp_raw_gen_syncookie_ipv6</summary>
    TcpRawGenSyncookieIpv6 = 205,
    /// <summary>bpf_tcp_raw_check_syncookie_ipv4</summary>
    TcpRawCheckSyncookieIpv4 = 206,
    /// <summary>bpf_tcp_raw_check_syncookie_ipv6</summary>
    TcpRawCheckSyncookieIpv6 = 207,
    /// <summary>bpf_ktime_get_tai_ns</summary>
    KtimeGetTaiNs = 208,
    /// <summary>bpf_user_ringbuf_drain</summary>
    UserRingbufDrain = 209,
}
