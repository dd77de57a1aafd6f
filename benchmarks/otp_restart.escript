#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noinput +sbt u
%%
%% The Erlang/OTP side of benchmarks/restart_latency.py, measured in the same run.
%% Prints "name value" lines (microseconds / bytes) that the Python script reads.
%%
%%   escript otp_restart.escript RESTARTS ONE_FOR_ALL_RESTARTS ACTORS
%%
%% Restart intensity is set so it never trips, logging is off, and the supervisor is recreated every
%% 100 restarts (as the Python side does).
-module(otp_restart).
-mode(compile).
-behaviour(supervisor).
%% The same module is also the children's gen_server callback module (init/1 tells them apart).

-export([main/1, init/1, handle_call/3, handle_cast/2, handle_info/2]).

main([Restarts, AllRestarts, Actors]) ->
    ok = logger:set_primary_config(level, none),
    R = list_to_integer(Restarts),
    A = list_to_integer(AllRestarts),
    N = list_to_integer(Actors),
    One = restarts(one_for_one, 1, R),
    report("one_for_one", One),
    Crash = restarts(one_for_one, 1, R, crash),
    report("one_for_one_crash", Crash),
    All = restarts(one_for_all, 8, A),
    report("one_for_all_8", All),
    {SpawnUs, MemBytes} = spawn_idle(N),
    io:format("spawn_us ~.3f~n", [SpawnUs]),
    io:format("memory_bytes ~.1f~n", [MemBytes]),
    io:format("otp_release ~s~n", [erlang:system_info(otp_release)]),
    halt(0).

%% -- supervisor and child callbacks ------------------------------------------------------------------
init({sup, Strategy, Children, Probe}) ->
    Flags = #{strategy => Strategy, intensity => 1000000000, period => 1},
    Specs = [#{id => I, start => {gen_server, start_link, [?MODULE, {child, I, Children, Probe}, []]},
               restart => permanent, shutdown => 5000, type => worker}
             || I <- lists:seq(1, Children)],
    {ok, {Flags, Specs}};
init({child, I, Last, Probe}) ->
    %% "init reached": the child with the last id reports the time and its pid.
    case I of
        Last -> Probe ! {init_reached, I, self(), erlang:monotonic_time(nanosecond)};
        _ -> Probe ! {init_reached, I, self(), none}
    end,
    {ok, I};
init(idle) ->
    {ok, idle}.

handle_call(_Req, _From, State) -> {reply, ok, State}.
handle_cast(crash, _State) -> erlang:error(crash_requested);
handle_cast(_Msg, State) -> {noreply, State}.
handle_info(_Msg, State) -> {noreply, State}.

%% -- restarts -----------------------------------------------------------------------------------------
%% How: kill (exit(Pid, kill)) or crash (an exception in handle_cast: gen_server's terminate, the
%% crash reason with its stack trace, the supervisor's restart).
restarts(Strategy, Children, Count) ->
    restarts(Strategy, Children, Count, kill).

restarts(Strategy, Children, Count, How) ->
    lists:sort(restart_loop({Strategy, How}, Children, Count, 0, undefined, undefined, [])).

restart_loop(_S, _C, Count, Count, Sup, _Victim, Acc) ->
    stop_sup(Sup),
    Acc;
restart_loop({S, _} = SH, C, Count, I, Sup, _Victim, Acc) when I rem 100 =:= 0 ->
    stop_sup(Sup),
    {ok, NewSup} = supervisor:start_link(?MODULE, {sup, S, C, self()}),
    unlink(NewSup),
    Pids = collect(C),
    restart_loop1(SH, C, Count, I, NewSup, maps:get(1, Pids), Acc);
restart_loop(SH, C, Count, I, Sup, Victim, Acc) ->
    restart_loop1(SH, C, Count, I, Sup, Victim, Acc).

restart_loop1({S, How} = SH, C, Count, I, Sup, Victim, Acc) ->
    T0 = erlang:monotonic_time(nanosecond),
    case How of
        kill -> exit(Victim, kill);
        crash -> gen_server:cast(Victim, crash)
    end,
    {Pids, T1} = collect_timed(case S of one_for_one -> 1; _ -> C end, C),
    NewVictim = maps:get(1, Pids),
    restart_loop(SH, C, Count, I + 1, Sup, NewVictim, [(T1 - T0) / 1000 | Acc]).

%% one_for_one: only child 1 restarts (it is the victim); report with its own time.
collect_timed(1, _C) ->
    receive {init_reached, 1, Pid, T} -> {#{1 => Pid}, stamp(T)} end;
collect_timed(C, C) ->
    collect_all(C, #{}, none).

stamp(none) -> erlang:monotonic_time(nanosecond);
stamp(T) -> T.

collect(C) ->
    {Pids, _} = collect_all(C, #{}, none),
    Pids.

collect_all(C, Pids, T) when map_size(Pids) =:= C -> {Pids, T};
collect_all(C, Pids, T) ->
    receive
        {init_reached, I, Pid, none} -> collect_all(C, Pids#{I => Pid}, T);
        {init_reached, I, Pid, Stamp} -> collect_all(C, Pids#{I => Pid}, Stamp)
    end.

stop_sup(undefined) -> ok;
stop_sup(Sup) ->
    Ref = monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', Ref, process, Sup, _} -> ok end,
    flush().

flush() -> receive {init_reached, _, _, _} -> flush() after 0 -> ok end.

report(Name, Sorted) ->
    Len = length(Sorted),
    Median = lists:nth(max(1, (Len + 1) div 2), Sorted),
    P99 = lists:nth(max(1, min(Len, ceil(Len * 0.99))), Sorted),
    io:format("~s_median_us ~.3f~n", [Name, Median]),
    io:format("~s_p99_us ~.3f~n", [Name, P99]).

%% -- idle processes: spawn time and memory --------------------------------------------------------
spawn_idle(N) ->
    erlang:garbage_collect(),
    Before = erlang:memory(processes),
    T0 = erlang:monotonic_time(nanosecond),
    Pids = [begin {ok, P} = gen_server:start(?MODULE, idle, []), P end || _ <- lists:seq(1, N)],
    T1 = erlang:monotonic_time(nanosecond),
    After = erlang:memory(processes),
    SpawnUs = (T1 - T0) / 1000 / N,
    MemBytes = (After - Before) / N,
    [exit(P, kill) || P <- Pids],
    {SpawnUs, MemBytes}.
